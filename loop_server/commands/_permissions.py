"""Who may run slash commands in a channel: owner and member grants (upstream's RBAC).

Grants come from two places: the config file's ``permissions`` key and the channel's stored
grants (its ``permissions`` column). Both have upstream's JSON shape::

    {"owners":  {"users": ["U1"], "roles": ["R1"]},
     "members": {"users": ["U2"], "roles": []}}

When neither holds any grant the channel is in bootstrap mode and everyone is an owner.
Otherwise the higher role from either source wins (owner > member); no grant means no role.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Role = Literal["owner", "member"]
OWNER: Role = "owner"
MEMBER: Role = "member"
ROLES: tuple[Role, ...] = (OWNER, MEMBER)

_GROUPS = ("owners", "members")
_KINDS = ("users", "roles")


class PermissionsConfigError(ValueError):
    """The config file's ``permissions`` value is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Grant:
    """The user ids and platform role ids given one role."""

    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def matches(self, user_id: str, user_roles: Iterable[str]) -> bool:
        return user_id in self.users or any(role in self.roles for role in user_roles)

    def without(self, kind: str, target: str) -> Grant:
        return replace(self, **{kind: tuple(i for i in getattr(self, kind) if i != target)})

    def adding(self, kind: str, target: str) -> Grant:
        current: tuple[str, ...] = getattr(self, kind)
        return self if target in current else replace(self, **{kind: (*current, target)})

    def is_empty(self) -> bool:
        return not self.users and not self.roles


@dataclass(frozen=True, slots=True)
class Permissions:
    owners: Grant = field(default_factory=Grant)
    members: Grant = field(default_factory=Grant)
    # Stored grants that could not be read. They count as "grants exist, matching nobody":
    # a damaged column must never fall back to bootstrap mode, where everyone is an owner.
    unreadable: bool = False

    def is_empty(self) -> bool:
        return not self.unreadable and self.owners.is_empty() and self.members.is_empty()

    def has_owner(self) -> bool:
        return self.unreadable or not self.owners.is_empty()

    def role_of(self, user_id: str, user_roles: Sequence[str] = ()) -> Role | None:
        if self.owners.matches(user_id, user_roles):
            return OWNER
        if self.members.matches(user_id, user_roles):
            return MEMBER
        return None

    def granting(self, kind: str, target: str, role: Role) -> Permissions:
        """``target`` (a user or role id, per ``kind``) holds exactly ``role`` afterwards.
        Unreadable grants are replaced, not merged: there is nothing to keep."""
        base = Permissions() if self.unreadable else self
        revoked = base.revoking(kind, target)
        if role == OWNER:
            return replace(revoked, owners=revoked.owners.adding(kind, target))
        return replace(revoked, members=revoked.members.adding(kind, target))

    def revoking(self, kind: str, target: str) -> Permissions:
        base = Permissions() if self.unreadable else self
        return Permissions(
            owners=base.owners.without(kind, target), members=base.members.without(kind, target)
        )

    def to_json(self) -> str:
        """The stored form. Never ``''``: the store keeps the old value when given an empty
        one, so revoking the last grant must still write something (lists are never null)."""
        return json.dumps(
            {
                group: {kind: list(getattr(getattr(self, group), kind)) for kind in _KINDS}
                for group in _GROUPS
            },
            separators=(",", ":"),
        )


def resolve_role(
    configured: Permissions, stored: Permissions, user_id: str, user_roles: Sequence[str] = ()
) -> Role | None:
    if configured.is_empty() and stored.is_empty():
        return OWNER  # bootstrap mode: nothing restricts this channel yet
    found = {configured.role_of(user_id, user_roles), stored.role_of(user_id, user_roles)}
    if OWNER in found:
        return OWNER
    if MEMBER in found:
        return MEMBER
    return None


def parse_stored(text: str) -> Permissions:
    """Read a channel's ``permissions`` column. ``''`` means no grants. JSON ``null`` lists
    (what upstream's Go encoder writes for empty slices) and unknown keys are accepted;
    anything else malformed gives ``Permissions(unreadable=True)``."""
    if not text.strip():
        return Permissions()
    try:
        return _from_value(json.loads(text), strict=False)
    except (ValueError, PermissionsConfigError):
        return Permissions(unreadable=True)


def permissions_from_config(value: Any) -> Permissions:
    """Read the config file's ``permissions`` value (absent or null: no grants).

    Unknown keys are errors here: a typo such as ``"owner"`` for ``"owners"`` would otherwise
    leave the server in bootstrap mode, where everyone is an owner."""
    if value is None:
        return Permissions()
    return _from_value(value, strict=True)


def _from_value(value: Any, *, strict: bool) -> Permissions:
    if not isinstance(value, Mapping):
        raise PermissionsConfigError("permissions must be an object")
    _check_keys(value, _GROUPS, "permissions", strict)
    grants = {group: _grant(value.get(group), f"permissions.{group}", strict) for group in _GROUPS}
    return Permissions(owners=grants["owners"], members=grants["members"])


def _grant(value: Any, where: str, strict: bool) -> Grant:
    if value is None:
        return Grant()
    if not isinstance(value, Mapping):
        raise PermissionsConfigError(f"{where} must be an object")
    _check_keys(value, _KINDS, where, strict)
    return Grant(
        users=_ids(value.get("users"), f"{where}.users"),
        roles=_ids(value.get("roles"), f"{where}.roles"),
    )


def _ids(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        raise PermissionsConfigError(f"{where} must be a list of non-empty strings")
    return tuple(dict.fromkeys(value))  # duplicates would make revoking look partial


def _check_keys(value: Mapping[str, Any], known: Iterable[str], where: str, strict: bool) -> None:
    unknown = sorted(set(value) - set(known))
    if strict and unknown:
        raise PermissionsConfigError(
            f"{where}: unknown key {unknown[0]!r} (expected {', '.join(known)})"
        )
