"""Serving one ASGI application's request from an aiohttp handler.

The MCP SDK's streamable HTTP transport is an ASGI app; the hub is aiohttp. This
adapter turns the aiohttp request into an ASGI `http` scope, feeds the body through
`receive` (the app bounds its size), and streams what the app sends back through an
aiohttp `StreamResponse`, so server-sent events flow as they are written. `receive`
answers `http.disconnect` once the response is complete or the client has gone;
aiohttp has no disconnect callback for a request, so a waiting `receive` checks the
transport once a second (only SSE streams wait there).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
CHUNK = 64 << 10
DISCONNECT_CHECK = 1.0  # seconds between looks at a waiting stream's connection


def http_scope(request: web.Request, extra: dict[str, Any] | None = None) -> Scope:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport else None
    sock = transport.get_extra_info("sockname") if transport else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": tuple(sock[:2]) if isinstance(sock, tuple) else None,
        "state": {},
        **(extra or {}),
    }


class _Exchange:
    """One request/response pair between aiohttp and the ASGI app."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None
        self.body_done = False
        self.finished = asyncio.Event()

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def receive(self) -> Message:
        if not self.body_done:
            chunk = await self.request.content.readany()
            self.body_done = not chunk
            return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}
        while not self.finished.is_set() and not self.gone():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.finished.wait(), DISCONNECT_CHECK)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            for name, value in message.get("headers", ()):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            self.response = response
            return
        if kind != "http.response.body" or self.response is None or self.finished.is_set():
            return
        try:
            if not self.response.prepared:
                await self.response.prepare(self.request)
            body = message.get("body", b"")
            if body:
                await self.response.write(body)
            if not message.get("more_body", False):
                await self.response.write_eof()
                self.finished.set()
        except (ConnectionError, RuntimeError):  # the client went away mid-stream
            self.finished.set()


async def serve(
    app: ASGIApp, request: web.Request, extra: dict[str, Any] | None = None
) -> web.StreamResponse:
    """Run `app` for this request; `extra` is added to the scope (who is calling)."""
    exchange = _Exchange(request)
    await app(http_scope(request, extra), exchange.receive, exchange.send)
    if exchange.response is None:
        raise RuntimeError("the ASGI app sent no response")
    if not exchange.response.prepared:
        await exchange.response.prepare(request)
        await exchange.response.write_eof()
    return exchange.response
