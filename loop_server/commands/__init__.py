"""Slash commands (SPEC §3.13, A.6, §11): the text parser behind ``POST /api/commands`` and
the ``InteractionHandler`` that runs commands and answers with bot messages.

See docs/commands.md for the commands, their replies and the permission model.
"""

from loop_server.commands._config import CommandsConfig, CommandsConfigError, TaskTemplate
from loop_server.commands._context import ChannelGrants, TaskOperations
from loop_server.commands._format import go_duration, prompt_preview
from loop_server.commands._handler import HANDLED_COMMANDS, CommandHandler
from loop_server.commands._parser import COMMAND_NAMES, UnknownCommand, parse_command, tokenize
from loop_server.commands._permissions import (
    MEMBER,
    OWNER,
    Grant,
    Permissions,
    Role,
    parse_stored,
    resolve_role,
)

__all__ = [
    "COMMAND_NAMES",
    "HANDLED_COMMANDS",
    "MEMBER",
    "OWNER",
    "ChannelGrants",
    "CommandHandler",
    "CommandsConfig",
    "CommandsConfigError",
    "Grant",
    "Permissions",
    "Role",
    "TaskOperations",
    "TaskTemplate",
    "UnknownCommand",
    "go_duration",
    "parse_command",
    "parse_stored",
    "prompt_preview",
    "resolve_role",
    "tokenize",
]
