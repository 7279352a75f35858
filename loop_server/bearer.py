"""What every ``401`` says about authentication, for the REST gateway and both WebSockets alike.

RFC 9110 §11.6.1: a 401 names the scheme the client should use; ours is a bearer token.
"""

from __future__ import annotations

CHALLENGE: tuple[bytes, bytes] = (b"www-authenticate", b"Bearer")


def challenge(status: int) -> tuple[tuple[bytes, bytes], ...]:
    """The challenge headers of an answer with ``status``: every 401 says how to authenticate."""
    return (CHALLENGE,) if status == 401 else ()
