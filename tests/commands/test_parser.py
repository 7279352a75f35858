"""The command-line tokeniser and parser (SPEC §3.13): pure functions, every edge case."""

from __future__ import annotations

import pytest

from loop_server.commands import COMMAND_NAMES, UnknownCommand, parse_command, tokenize
from loop_server.protocols import Interaction


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", []),
        ("   ", []),
        ("\t \t", []),
        ("tasks", ["tasks"]),
        ("  tasks  ", ["tasks"]),
        ("a b\tc", ["a", "b", "c"]),
        ("a  \t  b", ["a", "b"]),
        # Only spaces and tabs separate; a newline stays inside the token.
        ("a\nb c", ["a\nb", "c"]),
        ('"a b"', ["a b"]),
        ("'a b'", ["a b"]),
        ('prompt="hello world"', ["prompt=hello world"]),
        ("prompt='hello world' x", ["prompt=hello world", "x"]),
        # A quoted run joins the token it touches, on either side.
        ('a"b c"d', ["ab cd"]),
        ('"a""b"', ["ab"]),
        # The other quote character is literal inside a run.
        ('"it\'s"', ["it's"]),
        ("'say \"hi\"'", ['say "hi"']),
        # No escapes: a backslash is an ordinary character and does not protect a quote.
        (r'"a\"b', ["a\\b"]),
        (r"a\ b", ["a\\", "b"]),
        # An empty quoted run is an explicit empty argument.
        ('""', [""]),
        ("x '' y", ["x", "", "y"]),
        ('prompt=""', ["prompt="]),
        # An unterminated quote runs to the end of the text.
        ('"a b', ["a b"]),
        ("x 'unterminated  run", ["x", "unterminated  run"]),
        ('"', [""]),
        # Tabs and spaces inside quotes are kept as they are.
        ('"a\t b"', ["a\t b"]),
        ("x=1 y=2", ["x=1", "y=2"]),
        ("héllo wörld", ["héllo", "wörld"]),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def parse(text: str, *, channel: str = "c1", author: str = "u1") -> Interaction:
    return parse_command(channel, author, text)


@pytest.mark.parametrize("text", ["", "   ", "\t", '""', "''", "nope", "Tasks", "/tasks"])
def test_unknown_and_empty_commands(text: str) -> None:
    with pytest.raises(UnknownCommand):
        parse(text)


@pytest.mark.parametrize("name", ["allow_role", "deny_role", "help", "schedule-add", "TASK"])
def test_commands_the_api_does_not_accept(name: str) -> None:
    # allow_role/deny_role exist in upstream's orchestrator, not in its API parser.
    with pytest.raises(UnknownCommand):
        parse(f"{name} x")


def test_command_names_are_exactly_upstreams() -> None:
    assert sorted(COMMAND_NAMES) == sorted(
        [
            "tasks",
            "status",
            "readme",
            "template-list",
            "iamtheowner",
            "task",
            "cancel",
            "toggle",
            "stop",
            "template-add",
            "schedule",
            "edit",
            "allow_user",
            "deny_user",
        ]
    )


def test_interaction_fields() -> None:
    interaction = parse("status", channel="chan", author="alice")
    assert interaction == Interaction(
        channel_id="chan", command_name="status", author_id="alice", options={}
    )
    assert interaction.guild_id == ""
    assert tuple(interaction.roles) == ()


@pytest.mark.parametrize("name", ["tasks", "status", "readme", "template-list", "iamtheowner"])
def test_commands_without_arguments_ignore_extra_tokens(name: str) -> None:
    assert parse(name).options == {}
    assert parse(f"{name} extra key=value 'quoted arg'").options == {}


@pytest.mark.parametrize("name", ["task", "cancel", "toggle"])
def test_task_id_commands(name: str) -> None:
    assert parse(name).options == {}
    assert parse(f"{name} 7").options == {"task_id": "7"}
    assert parse(f"{name} 7 8 x=y").options == {"task_id": "7"}
    assert parse(f"{name} abc").options == {"task_id": "abc"}
    assert parse(f'{name} ""').options == {"task_id": ""}


def test_stop() -> None:
    assert parse("stop").options == {}
    assert parse("stop other-channel").options == {"channel_id": "other-channel"}
    assert parse("stop a b").options == {"channel_id": "a"}


def test_template_add() -> None:
    assert parse("template-add").options == {}
    assert parse("template-add daily").options == {"name": "daily"}
    assert parse("template-add 'with space' x").options == {"name": "with space"}


def test_schedule_maps_every_key_value_token() -> None:
    interaction = parse(
        "schedule type=cron schedule='0 9 * * *' prompt=\"Summarise the day's PRs\""
    )
    assert interaction.options == {
        "type": "cron",
        "schedule": "0 9 * * *",
        "prompt": "Summarise the day's PRs",
    }


def test_schedule_edge_cases() -> None:
    assert parse("schedule").options == {}
    # Tokens without "=" are ignored; the value is split at the first "=" only.
    assert parse("schedule loose type=interval words prompt=a=b").options == {
        "type": "interval",
        "prompt": "a=b",
    }
    # A later key wins; an empty value is kept; a token with no key names nothing.
    assert parse("schedule type=cron type=once prompt= =x").options == {
        "type": "once",
        "prompt": "",
    }
    # Unknown keys travel along; the handler reads only the ones it knows.
    assert parse("schedule colour=blue").options == {"colour": "blue"}


def test_edit() -> None:
    assert parse("edit").options == {}
    assert parse("edit 3").options == {"task_id": "3"}
    assert parse("edit 3 schedule=5m type=interval stray").options == {
        "task_id": "3",
        "schedule": "5m",
        "type": "interval",
    }
    assert parse('edit 3 prompt="new prompt"').options == {"task_id": "3", "prompt": "new prompt"}
    # The first argument is the id even when it looks like an option.
    assert parse("edit prompt=x").options == {"task_id": "prompt=x"}
    # A task_id option cannot override the positional id.
    assert parse("edit 3 task_id=9").options == {"task_id": "3"}


def test_allow_and_deny_user() -> None:
    assert parse("allow_user").options == {}
    assert parse("allow_user U1").options == {"target_id": "U1"}
    assert parse("allow_user U1 owner").options == {"target_id": "U1", "role": "owner"}
    assert parse("allow_user U1 member extra").options == {"target_id": "U1", "role": "member"}
    assert parse("deny_user").options == {}
    assert parse("deny_user U1 owner").options == {"target_id": "U1"}
