"""A raw HTTP/1.1 exchange over a loopback socket, for the cases where an HTTP client would
normalise what we want to send (paths like ``//api/x``) or hide what came back (a response that
arrives while the request body is still being sent)."""

from __future__ import annotations

from collections.abc import Iterable

import trio


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if len(body) < int(headers.get("content-length", "0")):
        return None
    return int(lines[0].split()[1]), headers, body


async def raw_request(
    port: int, request: bytes, body_chunks: Iterable[bytes] = ()
) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` then ``body_chunks`` while reading; return the first full response.
    Sending stops as soon as the response is complete (or the server stops reading)."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream, trio.open_nursery() as nursery:

            async def send_body() -> None:
                try:
                    await stream.send_all(request)
                    for chunk in body_chunks:
                        await stream.send_all(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the server answered and closed early: that is what we test

            nursery.start_soon(send_body)
            data = b""
            while (parsed := _parse(data)) is None:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    raise AssertionError(f"connection closed before a full response: {data!r}")
                data += chunk
            nursery.cancel_scope.cancel()
    return parsed
