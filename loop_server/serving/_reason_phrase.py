"""Status lines with their reason phrase (``HTTP/1.1 404 Not Found``, not ``HTTP/1.1 404 ``).

hypercorn builds its ``h11.Response`` events without a reason, so every answer it writes had an
empty phrase. RFC 9112 allows that, but clients, logs and people read the phrase (Go's server
always writes it; so do the listener's own answers in ``_request_head``). hypercorn offers no
hook for the status line; our subclass of its HTTP/1.1 protocol (``_handover._HandoverH11``)
gives each event without a reason the standard phrase of its code before h11 writes it.
Pinned hypercorn version: ``pyproject.toml``; ``tests/api/test_http.py`` checks the status
line on the wire.
"""

from __future__ import annotations

import http
from typing import Any

import h11

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
