"""`/mcp`: the MCP server on the hub's own port (streamable HTTP, official `mcp` SDK).

Only API tokens (`Authorization: Bearer rx_...`) are taken: anything else is a 401 in
API.md's shape before the SDK sees the request. Every request is authenticated anew
(a revoked token stops at once), and the caller rides in the ASGI scope to the tools.
The transport is stateless (no MCP session ids): any hub behind a balancer can answer
any request, and nothing is kept between calls. DNS-rebinding checks are off because
a bearer token, never a cookie, is what grants access.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from common.errors import Unauthorized
from hub.api.http import bearer_token, client_ip, require_principal
from hub.mcp.asgi import serve
from hub.mcp.tools import IP, PRINCIPAL, build
from hub.state import SETTINGS
from hub.tokens import PREFIX

PATH = "/mcp"
MANAGER: web.AppKey[StreamableHTTPSessionManager] = web.AppKey("mcp")


async def handle(request: web.Request) -> web.StreamResponse:
    token = bearer_token(request)
    if token is None or not token.startswith(PREFIX):
        raise Unauthorized(
            "The MCP server takes an API token: send Authorization: Bearer rx_... "
            "(create one with POST /api/user/tokens)."
        )
    principal = await require_principal(request, scope="read")  # each tool checks its own
    manager = request.app[MANAGER]
    extra: dict[str, Any] = {PRINCIPAL: principal, IP: client_ip(request)}
    return await serve(manager.handle_request, request, extra)


async def mcp_context(app: web.Application) -> AsyncIterator[None]:
    """Run the SDK's request manager for the app's lifetime, in a task of its own (its
    task group must be entered and left by the same task)."""
    if not app[SETTINGS].mcp_enabled:
        yield
        return
    server = build(app)
    server.streamable_http_app(
        stateless_http=True,
        max_request_body_size=app[SETTINGS].max_body_bytes,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    running = asyncio.Event()
    stopping = asyncio.Event()

    async def run() -> None:
        async with manager.run():
            running.set()
            await stopping.wait()

    task = asyncio.get_running_loop().create_task(run())
    started = asyncio.ensure_future(running.wait())
    await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        task.result()  # it failed to start: say why
    app[MANAGER] = manager
    yield
    stopping.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_routes(app: web.Application) -> None:
    if app[SETTINGS].mcp_enabled:
        for method in ("GET", "POST", "DELETE"):
            app.router.add_route(method, PATH, handle)
