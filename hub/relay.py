"""Relaying a request to the hub that holds its agent or session (docs/cluster.md).

A hub that does not hold an agent's link (or a live session) passes the client's
request through to the hub that does, with the client's own credentials: the other
hub checks access exactly as if the client had come to it. A WebSocket is pumped
frame by frame with one frame in flight each way, so a slow reader anywhere stops
the pump and TCP carries the pressure back: flow control stays end to end and this
hub buffers at most one frame per direction. A relayed request carries
`X-Rexec-Relayed`, and a hub never relays such a request again (no loops).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from common.errors import ApiError, Conflict

log = logging.getLogger("rexec.hub.relay")
RELAYED = "X-Rexec-Relayed"
ERROR_CODE = "X-Rexec-Error-Code"
ERROR_MESSAGE = "X-Rexec-Error-Message"
# Hop-by-hop and per-connection headers that must not be passed on.
_SKIP = {
    "host",
    "connection",
    "upgrade",
    "origin",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    RELAYED.lower(),
}
MAX_FRAME = 1 << 20


class Elsewhere(Exception):
    """What the request needs is held by the hub at `url`."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def relayed(request: web.Request) -> bool:
    return RELAYED in request.headers


def error_headers(request: web.Request, err: ApiError) -> dict[str, str]:
    """On a relayed request, the error also travels in headers: a failed WebSocket
    handshake shows the relaying hub only the status and headers, not the body."""
    if not relayed(request):
        return {}
    message = err.message.encode("ascii", "replace").decode()[:300]
    return {ERROR_CODE: err.code, ERROR_MESSAGE: message}


def offered_protocols(request: web.Request) -> list[str]:
    """The WebSocket subprotocols a client offered (hub/api/http.py reads credentials
    from them; a relay offers the same ones to the hub it relays to)."""
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def _forward_headers(request: web.Request, node: str) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP}
    headers[RELAYED] = node
    peer = request.remote or ""
    previous = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
    return headers


def _refusal(status: int, headers: Any) -> ApiError:
    code = headers.get(ERROR_CODE) if headers else None
    message = headers.get(ERROR_MESSAGE) if headers else None
    err = ApiError(message or "The hub holding this terminal refused.", code=code or "refused")
    err.status = status  # type: ignore[misc]
    return err


def _moving() -> Conflict:
    return Conflict(
        "The hub holding this terminal is not reachable; it is moving, try again shortly.",
        code="target_moving",
    )


def _ws_url(base: str, path_qs: str) -> str:
    scheme, rest = base.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path_qs}"


RELAYS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("relays")


async def close_relays(app: web.Application) -> None:
    """A graceful stop: relayed clients are told, like the hub's own clients
    (hub/drain.py), and reconnect (1012) to a hub that is staying."""
    notice = json.dumps(
        {"type": "error", "code": "hub_restarting", "message": "The hub is restarting; reconnect."}
    )
    for ws in list(app.get(RELAYS, ())):
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(notice)
        await ws.close(code=1012, message=b"hub restarting; reconnect")


async def relay_socket(
    request: web.Request, client: aiohttp.ClientSession, base: str, node: str
) -> web.WebSocketResponse:
    """Open the same WebSocket on the hub at `base`, then pump frames both ways.
    Refusals there become the same refusals here, before this socket is upgraded."""
    try:
        upstream = await client.ws_connect(
            _ws_url(base, request.path_qs),
            headers=_forward_headers(request, node),
            protocols=offered_protocols(request),  # credentials may ride there (hub/api/http.py)
            autoping=True,
            heartbeat=30,
            max_msg_size=MAX_FRAME,
            compress=0,
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise _refusal(exc.status, exc.headers) from None
    except (aiohttp.ClientError, OSError, TimeoutError):
        raise _moving() from None
    ws = web.WebSocketResponse(
        compress=False,
        max_msg_size=MAX_FRAME,
        heartbeat=30,
        protocols=(upstream.protocol,) if upstream.protocol else (),
    )
    try:
        await ws.prepare(request)
    except Exception:
        await upstream.close()
        raise
    down = asyncio.create_task(_pump(upstream, ws))
    up = asyncio.create_task(_pump(ws, upstream))
    relays = request.app.get(RELAYS)
    if relays is not None:
        relays.add(ws)
    try:
        done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if relays is not None:
            relays.discard(ws)
        for task in (down, up):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if down in done:  # the other hub ended it: pass its close code on
        code = upstream.close_code
        if code is None or code in (1006, 1011):  # that hub died: the client should come back
            await ws.close(code=1012, message=b"hub moved; reconnect")
        else:
            await ws.close(code=code, message=b"")
    else:
        await upstream.close()
    return ws


async def _pump(
    src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for msg in src:
        if msg.type is WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        elif msg.type is WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type is WSMsgType.ERROR:
            break


async def relay_http(
    request: web.Request, client: aiohttp.ClientSession, base: str, node: str
) -> web.Response:
    """Pass a plain request (exec on an agent held elsewhere) through, answer as it."""
    body = await request.read()
    try:
        async with client.request(
            request.method,
            base + request.path_qs,
            headers=_forward_headers(request, node),
            data=body,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        ) as resp:
            payload = await resp.read()
            headers = {
                k: v
                for k, v in resp.headers.items()
                if k.lower() in ("content-type", "retry-after")
            }
            return web.Response(body=payload, status=resp.status, headers=headers)
    except (aiohttp.ClientError, OSError, TimeoutError):
        raise _moving() from None
