"""Status lines with their reason phrase (``HTTP/1.1 404 Not Found``, not ``HTTP/1.1 404 ``).

hypercorn builds its ``h11.Response`` events without a reason, so every answer it writes had an
empty phrase. RFC 9112 allows that, but clients, logs and people read the phrase (Go's server
always writes it; so do the listener's own answers in ``_request_head``). hypercorn offers no
hook for the status line, so its protocol's one method that hands events to h11 is wrapped:
an event without a reason gets the standard phrase of its code. Pinned hypercorn version:
``pyproject.toml``; ``tests/api/test_http.py`` checks the status line on the wire.
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable
from typing import Any

import h11
from hypercorn.protocol.h11 import H11Protocol

_SendEvent = Callable[[Any, Any], Awaitable[None]]
_MARK = "_loop_reason_phrases"
_PHRASES = {status.value: status.phrase.encode("ascii") for status in http.HTTPStatus}


def with_reason(event: Any) -> Any:
    """``event`` with the standard reason phrase of its status when it has none."""
    if not isinstance(event, h11.Response | h11.InformationalResponse) or event.reason:
        return event
    phrase = _PHRASES.get(event.status_code)
    if phrase is None:  # a code with no standard phrase keeps the empty one
        return event
    # ``_parsed=True``: the headers were validated when hypercorn built ``event``; validating
    # them again cost ~8 µs of a ~400 µs request (h11 pinned in pyproject.toml).
    return type(event)(
        status_code=event.status_code,
        headers=event.headers,
        http_version=event.http_version,
        reason=phrase,
        _parsed=True,
    )


def install() -> None:
    """Make hypercorn's HTTP/1.1 protocol write reason phrases (idempotent)."""
    original: _SendEvent = H11Protocol._send_h11_event
    if getattr(original, _MARK, False):
        return

    async def send_with_reason(self: Any, event: Any) -> None:
        await original(self, with_reason(event))

    setattr(send_with_reason, _MARK, True)
    H11Protocol._send_h11_event = send_with_reason  # type: ignore[method-assign]
