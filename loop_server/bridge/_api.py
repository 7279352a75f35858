"""The bridge's side of the HTTP API: one request, and upstream's texts for what went wrong.

Every tool reaches the server through ``LoopApi.call``. A failure never raises out of a tool:
it becomes a ``Failure`` whose text is upstream's (``calling API: ...``, ``API error (status N):
<body>``, ``decoding response: ...``), which the tool hands to the model as an error result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

# The socket path in a URL is ignored by httpx when ``uds`` is set; the host is what the
# server's Host check sees, and loopback names always pass it.
SOCKET_BASE_URL = "http://localhost"


class Failure(Exception):
    """A call that did not give the answer the tool needs; the text is for the model."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the API is: a unix socket path, or else a base URL (``http://127.0.0.1:8222``)."""

    socket_path: str = ""
    base_url: str = ""
    token: str = ""

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if self.socket_path:
            transport = httpx.AsyncHTTPTransport(uds=self.socket_path)
            return httpx.AsyncClient(
                transport=transport, base_url=SOCKET_BASE_URL, headers=headers, timeout=60
            )
        return httpx.AsyncClient(base_url=self.base_url.rstrip("/"), headers=headers, timeout=60)


class LoopApi:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def call(
        self,
        method: str,
        path: str,
        expected_status: int,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> bytes:
        """The response body of a call answered with ``expected_status``."""
        try:
            response = await self._client.request(method, path, json=body, params=params)
        except httpx.HTTPError as err:
            raise Failure(f"calling API: {err or type(err).__name__}") from err
        if response.status_code != expected_status:
            text = response.content.decode("utf-8", errors="replace")
            raise Failure(f"API error (status {response.status_code}): {text}")
        return response.content

    async def call_json(
        self,
        method: str,
        path: str,
        expected_status: int,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        raw = await self.call(method, path, expected_status, body, params)
        try:
            return json.loads(raw)
        except ValueError as err:
            raise Failure(f"decoding response: {err}") from err
