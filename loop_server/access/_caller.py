"""Who is calling: the owner, or an agent acting for one channel (or nobody we know).

The one place that decides it, for every REST request: the gateway asks ``identify`` and acts
on the answer (401 for nobody, the channel scope check for an agent).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from loop_server.access._tokens import AgentTokens

# The ASGI scope key the listener of the agent socket sets on every request it serves, and the
# key the gateway stores the caller under for the routes that shape answers by it.
VIA_AGENT_SOCKET = "loop.via_agent_socket"
CALLER = "loop.caller"


@dataclass(frozen=True, slots=True)
class Caller:
    """``channel_id`` is "" for the owner (the owner token, or no token where none is needed)
    and the token's channel for an agent."""

    channel_id: str = ""

    @property
    def is_agent(self) -> bool:
        return self.channel_id != ""


OWNER = Caller()


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credential = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return credential.strip()
    return None


def token_matches(expected: str, given: bytes | None) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given)


def identify(
    owner_token: str,
    agents: AgentTokens | None,
    headers: Iterable[tuple[bytes, bytes]],
    *,
    via_agent_socket: bool,
) -> Caller | None:
    """The caller of a request with ``headers``, or None (401).

    Over TCP without an owner token, anyone is the owner, as before agent tokens existed (the
    bind address is what limits who can connect); an agent token still scopes its holder. The
    agent socket is mounted into every channel container, so there no token means nobody."""
    given = bearer_token(headers)
    if owner_token and token_matches(owner_token, given):
        return OWNER
    if given is not None and agents is not None:
        channel_id = agents.channel_of(given)
        if channel_id is not None:
            return Caller(channel_id)
    if not owner_token and not via_agent_socket:
        return OWNER
    return None
