"""The headers of every plain-text answer (Go's ``http.Error``), in one place.

A leaf module: the REST gateway, the lean routes, Quart's text responses, the WebSocket
listener's refusals and its ASGI fallback all answer text with these; the CORS headers that go
with them are ``loop_server.origin_policy``'s, and a 401's challenge is ``loop_server.bearer``'s.
"""

from __future__ import annotations

CONTENT_TYPE = "text/plain; charset=utf-8"
CONTENT_TYPE_HEADER: tuple[bytes, bytes] = (b"content-type", CONTENT_TYPE.encode())
NOSNIFF_HEADER: tuple[bytes, bytes] = (b"x-content-type-options", b"nosniff")
#: The headers of a plain-text answer, before its CORS headers and its length.
TEXT_HEADERS: tuple[tuple[bytes, bytes], ...] = (CONTENT_TYPE_HEADER, NOSNIFF_HEADER)
