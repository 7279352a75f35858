"""What every ``401`` says about authentication, for the REST gateway and both WebSockets alike.

RFC 9110 §11.6.1: a 401 names the scheme the client should use; ours is a bearer token.
"""

from __future__ import annotations

CHALLENGE: tuple[bytes, bytes] = (b"www-authenticate", b"Bearer")
