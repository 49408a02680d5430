"""For the client drivers: an httpx client that sends the maker's URLs to the local carlink, paths unchanged.

The clients hard-code https://identity.porsche.com and https://api.ppa.porsche.com (reference doc §4), so
the transport rewrites only scheme, host and port; the Host header, paths, queries and bodies stay as the
client sent them. It keeps follow_redirects=False (httpx's default), which the login's first step needs.
It runs inside the driver subprocesses, so it imports nothing from carlink.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx


class LocalTransport(httpx.AsyncBaseTransport):
    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = httpx.AsyncHTTPTransport()
        self.calls: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call: dict[str, Any] = {"method": request.method, "host": request.url.host, "path": request.url.path}
        if request.url.path == "/oauth/token":
            await request.aread()
            call["grant_type"] = parse_qs(request.content.decode()).get("grant_type", [""])[0]
        local = httpx.Request(
            request.method,
            request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        response = await self.inner.handle_async_request(local)
        call["status"] = response.status_code
        self.calls.append(call)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def local_client(port: int) -> tuple[httpx.AsyncClient, LocalTransport]:
    transport = LocalTransport(port)
    return httpx.AsyncClient(transport=transport), transport
