"""The ``/api/commands`` text parser (SPEC §3.13): pure, no I/O.

A command line is split into tokens on spaces and tabs. A ``'`` or ``"`` starts a quoted run
that ends at the next occurrence of the same quote character; the quotes are dropped, there are
no escapes, and the run joins whatever token it appears in (``prompt="a b"`` is one token,
``prompt=a b``). The first token names the command; the rest map into the interaction's options
by the per-command table below. Anything else is an unknown command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from loop_server.protocols import Interaction

_SEPARATORS = frozenset(" \t")
_QUOTES = frozenset("'\"")


class UnknownCommand(ValueError):
    """The text names no command the API accepts (``400 unknown command``)."""


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens; quoted runs may contain separators and the other quote."""
    tokens: list[str] = []
    current: list[str] = []
    # A quoted run makes a token even when it is empty: `""` is an explicit empty argument.
    in_token = False
    quote: str | None = None
    for char in text:
        if quote is not None:
            if char == quote:
                quote = None
            else:
                current.append(char)
        elif char in _QUOTES:
            quote = char
            in_token = True
        elif char in _SEPARATORS:
            if in_token:
                tokens.append("".join(current))
                current.clear()
                in_token = False
        else:
            current.append(char)
            in_token = True
    if in_token:  # an unterminated quote runs to the end of the text
        tokens.append("".join(current))
    return tokens


def _no_options(args: Sequence[str]) -> dict[str, str]:
    return {}


def _positional(*names: str) -> Callable[[Sequence[str]], dict[str, str]]:
    """Map the first positional arguments to ``names``; missing ones are simply absent."""

    def options(args: Sequence[str]) -> dict[str, str]:
        return dict(zip(names, args, strict=False))

    return options


def _key_values(args: Sequence[str]) -> dict[str, str]:
    """``key=value`` tokens (split at the first ``=``); other tokens are ignored, a later key
    wins, and a token with nothing before its ``=`` names no option."""
    options: dict[str, str] = {}
    for token in args:
        key, sep, value = token.partition("=")
        if sep and key:
            options[key] = value
    return options


def _edit_options(args: Sequence[str]) -> dict[str, str]:
    options = _key_values(args[1:])
    if args:
        options["task_id"] = args[0]  # the id is positional even if it contains "="
    return options


_OPTION_MAPPERS: dict[str, Callable[[Sequence[str]], dict[str, str]]] = {
    "tasks": _no_options,
    "status": _no_options,
    "readme": _no_options,
    "template-list": _no_options,
    "iamtheowner": _no_options,
    "task": _positional("task_id"),
    "cancel": _positional("task_id"),
    "toggle": _positional("task_id"),
    "stop": _positional("channel_id"),
    "template-add": _positional("name"),
    "schedule": _key_values,
    "edit": _edit_options,
    "allow_user": _positional("target_id", "role"),
    "deny_user": _positional("target_id"),
}

#: The command names ``POST /api/commands`` accepts.
COMMAND_NAMES: frozenset[str] = frozenset(_OPTION_MAPPERS)


def parse_command(channel_id: str, author_id: str, text: str) -> Interaction:
    """Turn a command line into an ``Interaction``; raises ``UnknownCommand``."""
    tokens = tokenize(text)
    if not tokens:
        raise UnknownCommand("empty command")
    name, args = tokens[0], tokens[1:]
    mapper = _OPTION_MAPPERS.get(name)
    if mapper is None:
        raise UnknownCommand(name)
    return Interaction(
        channel_id=channel_id, command_name=name, author_id=author_id, options=mapper(args)
    )
