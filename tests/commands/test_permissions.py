"""Grants and roles (pure): resolution, bootstrap mode, the stored JSON form."""

from __future__ import annotations

import json

import pytest

from loop_server.commands import MEMBER, OWNER, Grant, Permissions, parse_stored, resolve_role
from loop_server.commands._permissions import PermissionsConfigError, permissions_from_config

NONE = Permissions()


def grants(
    owners: tuple[str, ...] = (),
    members: tuple[str, ...] = (),
    owner_roles: tuple[str, ...] = (),
    member_roles: tuple[str, ...] = (),
) -> Permissions:
    return Permissions(Grant(owners, owner_roles), Grant(members, member_roles))


def test_bootstrap_mode_makes_everyone_owner() -> None:
    assert resolve_role(NONE, NONE, "anyone") == OWNER
    # Explicitly empty stored grants (what revoking the last grant writes) are still bootstrap.
    assert resolve_role(NONE, parse_stored(NONE.to_json()), "anyone") == OWNER


def test_roles_from_either_source_and_the_higher_wins() -> None:
    stored = grants(owners=("o",), members=("m", "both"))
    configured = grants(owners=("both",), members=("cm",))
    assert resolve_role(NONE, stored, "o") == OWNER
    assert resolve_role(NONE, stored, "m") == MEMBER
    assert resolve_role(NONE, stored, "stranger") is None
    assert resolve_role(configured, NONE, "cm") == MEMBER
    assert resolve_role(configured, NONE, "stranger") is None
    assert resolve_role(configured, stored, "both") == OWNER
    assert resolve_role(configured, stored, "cm") == MEMBER


def test_platform_roles_match() -> None:
    stored = grants(owner_roles=("admins",), member_roles=("devs",))
    assert resolve_role(NONE, stored, "u", ["devs"]) == MEMBER
    assert resolve_role(NONE, stored, "u", ["devs", "admins"]) == OWNER
    assert resolve_role(NONE, stored, "u", ["ops"]) is None


def test_granting_moves_a_user_between_roles() -> None:
    start = grants(owners=("a",), members=("b",))
    promoted = start.granting("users", "b", OWNER)
    assert promoted == grants(owners=("a", "b"))
    demoted = promoted.granting("users", "a", MEMBER)
    assert demoted == grants(owners=("b",), members=("a",))
    assert demoted.granting("users", "a", MEMBER) == demoted  # idempotent
    assert demoted.revoking("users", "a") == grants(owners=("b",))
    assert demoted.revoking("users", "nobody") == demoted
    roles = NONE.granting("roles", "r1", OWNER)
    assert roles == grants(owner_roles=("r1",))


def test_has_owner_and_is_empty() -> None:
    assert NONE.is_empty() and not NONE.has_owner()
    assert not grants(members=("m",)).is_empty()
    assert not grants(members=("m",)).has_owner()
    assert grants(owner_roles=("r",)).has_owner()


def test_stored_json_shape_round_trips() -> None:
    value = grants(owners=("o",), members=("m",), member_roles=("r",))
    assert json.loads(value.to_json()) == {
        "owners": {"users": ["o"], "roles": []},
        "members": {"users": ["m"], "roles": ["r"]},
    }
    assert parse_stored(value.to_json()) == value
    # Never '': the store keeps its old value when given an empty one.
    assert NONE.to_json() == (
        '{"owners":{"users":[],"roles":[]},"members":{"users":[],"roles":[]}}'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", NONE),
        ("  ", NONE),
        ("{}", NONE),
        # What upstream's Go encoder writes for empty slices.
        (
            '{"owners":{"users":["o"],"roles":null},"members":{"users":null,"roles":null}}',
            grants(owners=("o",)),
        ),
        ('{"owners":null,"members":{"users":["m"]}}', grants(members=("m",))),
        ('{"owners":{"users":["o"],"extra":1},"future":true}', grants(owners=("o",))),
        ('{"owners":{"users":["o","o"]}}', grants(owners=("o",))),
    ],
)
def test_parse_stored(text: str, expected: Permissions) -> None:
    assert parse_stored(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '"x"',
        '{"owners":[]}',
        '{"owners":{"users":"o"}}',
        '{"owners":{"users":[1]}}',
        '{"members":{"users":[""]}}',
    ],
)
def test_unreadable_stored_grants_fail_closed(text: str) -> None:
    stored = parse_stored(text)
    assert stored.unreadable
    assert not stored.is_empty() and stored.has_owner()  # never bootstrap mode, no claim
    assert resolve_role(NONE, stored, "anyone") is None
    assert resolve_role(grants(owners=("boss",)), stored, "boss") == OWNER
    # Writing over unreadable grants starts from nothing.
    assert stored.granting("users", "x", MEMBER) == grants(members=("x",))
    assert stored.revoking("users", "x") == NONE


def test_permissions_from_config() -> None:
    assert permissions_from_config(None) == NONE
    assert permissions_from_config({}) == NONE
    assert permissions_from_config(
        {"owners": {"users": ["o"], "roles": ["r"]}, "members": {"users": ["m"]}}
    ) == grants(owners=("o",), owner_roles=("r",), members=("m",))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "permissions must be an object"),
        (
            {"owner": {"users": ["o"]}},
            "permissions: unknown key 'owner' (expected owners, members)",
        ),
        ({"owners": []}, "permissions.owners must be an object"),
        ({"owners": {"user": ["o"]}}, "permissions.owners: unknown key 'user'"),
        ({"members": {"users": "m"}}, "permissions.members.users must be a list of non-empty"),
        ({"members": {"roles": [42]}}, "permissions.members.roles must be a list of non-empty"),
    ],
)
def test_permissions_from_config_rejects_malformed_values(value: object, message: str) -> None:
    with pytest.raises(PermissionsConfigError) as caught:
        permissions_from_config(value)
    assert str(caught.value).startswith(message)
