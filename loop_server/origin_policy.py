"""Which callers a web browser may make of us: the Origin and Host rules, and the CORS headers.

"Loopback only" keeps the network out, not the browser on the same machine: any page the user
has open can send requests to ``127.0.0.1``. Browsers say who is asking in the ``Origin``
header (always on WebSocket handshakes and on every request a script or form could use to
change something), so:

* no ``Origin`` — a non-browser client (curl, scripts, the CLI, the MCP bridge): allowed, and
  answered with upstream's ``Access-Control-Allow-Origin: *`` (harmless to such clients);
* the server's own origin (a page it served; same scheme-less host and port as ``Host``), or one
  listed in ``allowed_origins``: allowed, and CORS headers echo that origin, never ``*``;
* any other origin (``null`` included): ``403``, with no CORS headers.

DNS rebinding makes an attacker's name resolve to ``127.0.0.1``, so its pages become "same
origin" with us. Their requests carry the attacker's name in ``Host``: when the TCP listener is
bound to loopback, a ``Host`` that is not ``localhost``, a loopback IP or in ``allowed_hosts``
is refused (``403``). Requests that arrive on a unix socket are not checked (no browser can
reach one, and their ``Host`` is whatever the client made up).

This module is the one place those rules and headers live; the REST gateway and both
WebSocket paths (the listener's fast path and the ASGI fallback) call ``OriginPolicy.judge``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from loop_server.memo import Memo

Headers = tuple[tuple[bytes, bytes], ...]

_ALLOW_METHODS = (b"access-control-allow-methods", b"GET, POST, PATCH, DELETE, OPTIONS")
# ``Authorization`` too, for the bearer token.
_ALLOW_HEADERS = (b"access-control-allow-headers", b"Content-Type, Authorization")

#: The CORS headers of an answer to a request without ``Origin`` (upstream's, unchanged).
ANY_ORIGIN: Headers = ((b"access-control-allow-origin", b"*"), _ALLOW_METHODS, _ALLOW_HEADERS)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHOWN_LIMIT = 200  # characters of a refused header value quoted back in the answer


def header_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """``headers`` as raw HTTP/1.1 header lines (for answers written straight to a socket),
    names in Go's canonical form (``Access-Control-Allow-Origin``), as upstream writes them."""
    return b"".join(
        b"-".join(part.capitalize() for part in name.split(b"-")) + b": " + value + b"\r\n"
        for name, value in headers
    )


def normalize_origin(text: str) -> str:
    """``scheme://host[:port]`` as browsers send it: lower case, default port dropped.

    Raises ``ValueError`` (with the reason) for anything that is not an http(s) origin."""
    try:
        parsed = urlsplit(text.strip())
    except ValueError as error:  # "http://[::1"
        raise ValueError(f"{text!r} is not an origin: {error}") from None
    scheme = parsed.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"{text!r} is not an origin: expected http://HOST[:PORT] or https://…")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.username:
        raise ValueError(f"{text!r} is not an origin: only scheme, host and port (no path)")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError as error:  # a port that is not a number
        raise ValueError(f"{text!r} is not an origin: {error}") from None
    if not host:
        raise ValueError(f"{text!r} is not an origin: no host")
    return _origin_text(scheme, host, port or _DEFAULT_PORTS[scheme])


def normalize_host(text: str) -> str:
    """A name for ``allowed_hosts``: lower case, no port, no trailing dot.

    Raises ``ValueError`` for anything that is not a bare host name or IP."""
    name = text.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if not name or (any(c in name for c in "/:@?#* \t") and not _is_ip(name)):
        raise ValueError(f"{text!r} is not a host name (no scheme, port or wildcard)")
    return name


def _origin_text(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    suffix = "" if port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{shown}{suffix}"


#: Bounds of the verdicts kept (``OriginPolicy.judge``): entries, and bytes of header values.
_VERDICTS_KEPT = 256
_VERDICT_BYTES_KEPT = 1 << 20


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _split_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header's name (lower case, no trailing dot) and port; None if malformed."""
    try:
        parsed = urlsplit("//" + value.strip())
        host, port = parsed.hostname, parsed.port
    except ValueError:  # "[::1", a port that is not a number
        return None
    if not host or parsed.path or parsed.query or parsed.fragment or parsed.username:
        return None
    return host.rstrip("."), port


def _quoted(value: str) -> str:
    shown = value if len(value) <= _SHOWN_LIMIT else value[:_SHOWN_LIMIT] + "…"
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one request: refuse it (``refusal`` is the 403's text, without the
    final newline), or answer it with ``cors`` among the headers."""

    cors: Headers
    refusal: str | None = None

    @property
    def cors_lines(self) -> bytes:
        return header_lines(self.cors)


ALLOWED_WITHOUT_ORIGIN = Verdict(cors=ANY_ORIGIN)


class OriginPolicy:
    """The rules for one server. ``check_host``: the TCP listener is bound to loopback."""

    def __init__(
        self,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        *,
        check_host: bool = True,
    ) -> None:
        self.allowed_origins = frozenset(normalize_origin(o) for o in allowed_origins)
        self.allowed_hosts = frozenset(normalize_host(h) for h in allowed_hosts)
        self.check_host = check_host
        # Verdicts by (origin, host, over_tcp): a verdict depends on nothing else, and working
        # one out (URL and IP address parsing) cost ~25 µs of every request, while a server
        # sees the same few values again and again.
        self._verdicts: Memo[tuple[bytes | None, bytes | None, bool], Verdict] = Memo(
            max_entries=_VERDICTS_KEPT, max_weight=_VERDICT_BYTES_KEPT
        )

    def judge(self, headers: Iterable[tuple[bytes, bytes]], *, over_tcp: bool = True) -> Verdict:
        """The verdict on a request with ``headers`` (names in any case). ``over_tcp``: it came
        over the TCP listener (not a unix socket), so the Host rule applies."""
        origin: bytes | None = None
        host: bytes | None = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"origin" and origin is None:
                origin = value
            elif lowered == b"host" and host is None:
                host = value
        key = (origin, host, over_tcp)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._judge(origin, host, over_tcp=over_tcp)
            self._verdicts.put(key, verdict, len(origin or b"") + len(host or b""))
        return verdict

    def _judge(self, origin: bytes | None, host: bytes | None, *, over_tcp: bool) -> Verdict:
        host_text = host.decode("latin-1") if host is not None else None
        if over_tcp and self.check_host and host_text is not None:
            refusal = self._host_refusal(host_text)
            if refusal is not None:
                return Verdict(cors=(), refusal=refusal)
        if origin is None:
            return ALLOWED_WITHOUT_ORIGIN
        origin_text = origin.decode("latin-1")
        if self._origin_allowed(origin_text, host_text):
            echoed = origin.strip()
            return Verdict(
                cors=(
                    (b"access-control-allow-origin", echoed),
                    (b"vary", b"Origin"),
                    _ALLOW_METHODS,
                    _ALLOW_HEADERS,
                )
            )
        return Verdict(
            cors=(),
            refusal=(
                f"forbidden: origin {_quoted(origin_text)} may not use this server "
                "(a web page of another site); add it to allowed_origins if it should"
            ),
        )

    def _host_refusal(self, value: str) -> str | None:
        split = _split_host(value)
        if split is not None:
            name = split[0]
            if name == "localhost" or name in self.allowed_hosts:
                return None
            try:
                if ipaddress.ip_address(name).is_loopback:
                    return None
            except ValueError:
                pass
        return (
            f"forbidden: host {_quoted(value)} is not this server's name (a DNS rebinding "
            "attempt?); use localhost or 127.0.0.1, or add the name to allowed_hosts"
        )

    def _origin_allowed(self, value: str, host: str | None) -> bool:
        try:
            origin = normalize_origin(value)
        except ValueError:
            return False  # "null", garbage: no page we know
        if origin in self.allowed_origins:
            return True
        if host is None:
            return False
        # Our own origin: a page this server served, whose host and port are the request's.
        split = _split_host(host)
        if split is None:
            return False
        scheme = origin.partition(":")[0]
        name, port = split
        return origin == _origin_text(scheme, name, port or _DEFAULT_PORTS[scheme])
