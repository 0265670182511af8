"""`WS /ws/terminal/{id}`: the terminal socket of browsers, the CLI and AI clients.

The handler only adapts: it checks access before the upgrade (plain HTTP errors),
then feeds binary frames to the session as keystrokes and typed JSON messages as
commands. Output reaches the socket through the broker's bounded client queue.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel, Field, ValidationError

from common.errors import ApiError, Conflict, InvalidRequest, NotFound
from common.ids import has_prefix
from hub.api.http import (
    WS_PROTOCOL,
    bearer_token,
    client_ip,
    protocol_credential,
    require_principal,
    require_user,
)
from hub.api.web import check_origin
from hub.relay import Elsewhere, relay_socket, relayed
from hub.security import token_family
from hub.sessions.broker import Client, Role, Session
from hub.state import AGENTS, BROKER, CLUSTER, CONTAINERS, HTTP, SHARES, SUPERVISOR

log = logging.getLogger("rexec.hub.terminal")
routes = web.RouteTableDef()
MAX_CLIENT_FRAME = 64 << 10


class ResizeMessage(BaseModel):
    type: Literal["resize"]
    cols: int = Field(ge=1, le=1000)
    rows: int = Field(ge=1, le=1000)


class WsSink:
    """The broker's view of a WebSocket."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])


def _size(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidRequest(f"{name} must be a number from 1 to 1000.", details={"field": name})
    return int(raw)


def _offset(request: web.Request) -> int | None:
    raw = request.query.get("offset")
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidRequest("offset must be a whole number.", details={"field": "offset"})
    return int(raw)


async def _session_elsewhere(request: web.Request, session_id: str) -> None:
    """Raise `Elsewhere` when another hub holds this live session (several hubs)."""
    cluster = request.app[CLUSTER]
    if cluster is not None and not relayed(request):
        url = await cluster.where("session", session_id)
        if url is not None:
            raise Elsewhere(url)


async def _open_session(request: web.Request, user_id: str, target: str) -> Session:
    broker = request.app[BROKER]
    joining = request.query.get("session")
    if joining:
        session = broker.get(joining)
        if session is None:
            await _session_elsewhere(request, joining)
        if session is None or session.user_id != user_id or session.target != target:
            if request.app[AGENTS].orphan_session(joining):
                raise Conflict(
                    "The session is waiting for its agent to come back; try again shortly.",
                    code="session_resuming",
                )
            raise NotFound("No such live session.", code="session_not_found")
        return session
    cols, rows = _size(request, "cols", 80), _size(request, "rows", 24)
    command = request.query.get("command")
    return await start_session(
        request.app, user_id, target, command, cols, rows, may_relay=not relayed(request)
    )


async def start_session(
    app: web.Application,
    user_id: str,
    target: str,
    command: str | None,
    cols: int,
    rows: int,
    *,
    may_relay: bool = True,
) -> Session:
    """A new session on the user's container or agent (also for the MCP server's keys).
    Raises `Elsewhere` when another hub holds the agent's link and `may_relay`."""
    broker = app[BROKER]
    argv = ["/bin/sh", "-c", command] if command else None
    if has_prefix(target, "agt"):
        registry = app[AGENTS]
        agent = await registry.get(user_id, target)
        if may_relay and (url := await registry.elsewhere(agent.id)) is not None:
            raise Elsewhere(url)
        conn = registry.connection(agent.id)
        env = {"TERM": "xterm-256color"}
        source = await conn.open_channel("pty", argv, env=env, cols=cols, rows=rows)
        return await broker.start(
            user_id=user_id, target=agent.id, source=source, size=(cols, rows)
        )
    if has_prefix(target, "ctr"):
        row, pty = await app[CONTAINERS].open_pty(user_id, target, argv, cols, rows)
        return await broker.start(user_id=user_id, target=row.id, source=pty, size=(cols, rows))
    raise NotFound("No such terminal target.", code="target_not_found")


def share_passcode(request: web.Request) -> str | None:
    """A share's passcode: the offered `rexec.passcode.<base64url>` subprotocol, or
    `?passcode=` (API.md's URL form)."""
    encoded = protocol_credential(request, "passcode")
    if encoded is None:
        return request.query.get("passcode") or None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "The passcode subprotocol is not base64url of UTF-8 text.",
            details={"field": "passcode"},
        ) from None


async def _join_shared(request: web.Request, token: str) -> tuple[Session, str, Role, str]:
    """A session joined through a share link: its session, the joiner, role and share."""
    share = await request.app[SHARES].open(token, share_passcode(request), client_ip(request))
    session = request.app[BROKER].get(share.session_id)
    if session is None:
        await _session_elsewhere(request, share.session_id)
    if session is None or session.target != request.match_info["id"]:
        raise NotFound("The shared session is not live.", code="session_not_found")
    who = f"guest:{share.id}"
    if bearer_token(request, allow_query=True):
        who = (await require_user(request, allow_query=True)).id
    role: Role = "writer" if share.role == "writer" else "viewer"
    return session, who, role, share.id


@routes.get("/ws/terminal/{id}")
async def terminal(request: web.Request) -> web.StreamResponse:
    check_origin(request)  # before relaying too: the relay does not pass Origin on
    try:
        return await _terminal(request)
    except Elsewhere as there:  # another hub holds it: relay to that hub (docs/cluster.md)
        cluster = request.app[CLUSTER]
        assert cluster is not None
        return await relay_socket(request, request.app[HTTP], there.url, cluster.node_id)


async def _terminal(request: web.Request) -> web.StreamResponse:
    offset = _offset(request)
    share_token = request.query.get("share")
    tags: dict[str, str] = {}
    if share_token:
        session, user_id, role, share_id = await _join_shared(request, share_token)
        tags["share"] = share_id
    else:
        principal = await require_principal(request, allow_query=True)
        user = principal.user
        session = await _open_session(request, user.id, request.match_info["id"])
        user_id, role = user.id, "owner"
        # Remember what access this socket rides on, to end it when that access ends.
        if principal.token_id is not None:
            tags["token"] = principal.token_id
        else:
            family = token_family(bearer_token(request, allow_query=True) or "")
            if family is not None:
                tags["family"] = family
    ws = web.WebSocketResponse(
        compress=False, max_msg_size=MAX_CLIENT_FRAME, heartbeat=30, protocols=(WS_PROTOCOL,)
    )
    try:
        await ws.prepare(request)
    except Exception:
        if not session.participants():
            session.close(0.0)
        raise
    client = session.attach(user_id, role, WsSink(ws), offset=offset, tags=tags)
    try:
        # Who joins while an AI's command waits sees the request too.
        for waiting in await request.app[SUPERVISOR].pending_messages(session.target):
            session.tell(client, waiting)
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                await session.input(client, msg.data)
            elif msg.type is WSMsgType.TEXT:
                await _control(session, client, ws, msg.data)
    finally:
        session.detach(client)
    return ws


async def _control(session: Session, client: Client, ws: web.WebSocketResponse, text: str) -> None:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if data.get("type") == "resize":
            resize = ResizeMessage.model_validate(data)
            session.resize(client, resize.cols, resize.rows)
            return
        err: ApiError = InvalidRequest(f"Unknown message type {data.get('type')!r}.")
    except (ValueError, ValidationError) as exc:
        err = InvalidRequest(f"Invalid message: {str(exc).splitlines()[0]}")
    await ws.send_str(json.dumps({"type": "error", "code": err.code, "message": err.message}))
