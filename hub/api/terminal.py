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

from common import jsonlimit
from common.errors import Conflict, Forbidden, InvalidRequest, NotFound
from common.ids import has_prefix
from hub.api.http import (
    WS_PROTOCOL,
    bearer_token,
    client_ip,
    protocol_credential,
    require_principal,
)
from hub.api.web import check_origin
from hub.approvals.policy import Verdict
from hub.relay import Elsewhere, relay_socket, relayed
from hub.security import token_family
from hub.sessions.broker import Client, Role, Session
from hub.state import AGENTS, BROKER, CLUSTER, CONTAINERS, HTTP, SHARES, SUPERVISOR
from hub.targets import resolve_target
from hub.tokens import Principal

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


async def supervise(
    app: web.Application,
    principal: Principal,
    target: str,
    action: Literal["open", "attach"],
    command: str | None,
) -> Verdict:
    """The supervision check (hub/approvals/guard.py) for a terminal about to be opened
    or joined: refused (403 before the upgrade), typing allowed (`run`) or output only
    (`watch`). A new terminal's target is checked to be the caller's first, so a paused
    policy never answers for someone else's target (the caller resolved it with
    hub/targets.py, which answers 404 for anyone else's)."""
    verdict = await app[SUPERVISOR].check(principal.kind, target, action, command)
    if verdict.action == "refuse":
        raise Forbidden(verdict.reason, code=verdict.code)
    return verdict


def supervision_tags(principal: Principal, target: str, verdict: Verdict) -> dict[str, str]:
    """What lets pausing (or a stricter policy) find an agent's live connection
    (hub/commands.py)."""
    if principal.kind == "person":
        return {}
    tags = {"ai_target": target}
    if verdict.action == "run":
        tags["ai_keys"] = target
    return tags


async def _join_shared(
    request: web.Request, token: str
) -> tuple[Session, str, Role, dict[str, str]]:
    """A session joined through a share link: its session, the joiner, role and the tags
    of the socket (the share; an agent's credential's, hub/commands.py)."""
    share = await request.app[SHARES].open(token, share_passcode(request), client_ip(request))
    session = request.app[BROKER].get(share.session_id)
    if session is None:
        await _session_elsewhere(request, share.session_id)
    if session is None or session.target != request.match_info["id"]:
        raise NotFound("The shared session is not live.", code="session_not_found")
    who = f"guest:{share.id}"
    role: Role = "writer" if share.role == "writer" else "viewer"
    tags = {"share": share.id}
    if bearer_token(request, allow_query=True):
        principal = await require_principal(request, allow_query=True)
        who = principal.user.id
        # An agent's credential types through a writer link only where it may type.
        verdict = await supervise(request.app, principal, session.target, "attach", None)
        if verdict.action != "run":
            role = "viewer"
        tags.update(supervision_tags(principal, session.target, verdict))
    return session, who, role, tags


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
    refused: dict[str, str] | None = None
    if share_token:
        session, user_id, role, tags = await _join_shared(request, share_token)
    else:
        principal = await require_principal(request, allow_query=True)
        user = principal.user
        # An id or a name, the caller's own (404 otherwise) before anything is judged.
        target = await resolve_target(request.app, user.id, request.match_info["id"])
        joining = bool(request.query.get("session"))
        command = None if joining else request.query.get("command")
        verdict = await supervise(
            request.app, principal, target, "attach" if joining else "open", command
        )
        session = await _open_session(request, user.id, target)
        user_id, role = user.id, ("owner" if verdict.action == "run" else "viewer")
        tags.update(supervision_tags(principal, session.target, verdict))
        if verdict.action == "watch":  # told once, at the first keystroke it drops
            refused = {"type": "error", "code": verdict.code, "message": verdict.reason}
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
                if refused is not None and client.role == "viewer":
                    session.tell(client, refused)
                    refused = None
                await session.input(client, msg.data)
            elif msg.type is WSMsgType.TEXT:
                await _control(session, client, ws, msg.data)
    finally:
        session.detach(client)
    return ws


def parse_control(text: str) -> ResizeMessage:
    """A client's text frame as the one message it may send; InvalidRequest otherwise
    (its cause is jsonlimit.TooDeep for a frame nested too deeply). Fuzzed in
    tests/hub/test_fuzz_decoders.py."""
    try:
        data = jsonlimit.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if data.get("type") == "resize":
            return ResizeMessage.model_validate(data)
    except (ValueError, ValidationError) as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InvalidRequest(f"Invalid message: {why}") from exc
    raise InvalidRequest(f"Unknown message type {repr(data.get('type'))[:100]}.")


async def _control(session: Session, client: Client, ws: web.WebSocketResponse, text: str) -> None:
    try:
        resize = parse_control(text)
    except InvalidRequest as err:
        await ws.send_str(json.dumps({"type": "error", "code": err.code, "message": err.message}))
        if isinstance(err.__cause__, jsonlimit.TooDeep):  # no client writes that: close
            await ws.close(code=err.close_code, message=b"message nested too deeply")
        return
    session.resize(client, resize.cols, resize.rows)
