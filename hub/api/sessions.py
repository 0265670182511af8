"""Session endpoints: list, get, end, share (and its revocation), recording."""

from __future__ import annotations

import os
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from common.errors import Conflict, NotFound
from hub import commands
from hub.api.http import Body, client_ip, iso, json_ok, parse_body, require_user
from hub.db.models import SessionShare, TerminalSession, utcnow
from hub.sessions.recorder import recording_path
from hub.state import BROKER, DB, SETTINGS, SHARES

routes = web.RouteTableDef()


class ShareBody(Body):
    role: Literal["viewer", "writer"] = "viewer"
    passcode: str | None = Field(None, max_length=128)  # strength: hub/sessions/shares.py
    expires_in: int | None = Field(None, ge=60, le=30 * 86400)


def public_base(request: web.Request) -> str:
    configured = request.app[SETTINGS].public_url
    return (configured or f"{request.scheme}://{request.host}").rstrip("/")


def _recording(request: web.Request, row: TerminalSession) -> dict[str, Any]:
    if row.status != "live" and row.recording_bytes:  # complete: its size is on record
        return {"available": True, "bytes": row.recording_bytes, "duration": row.duration}
    path = recording_path(request.app[SETTINGS].recordings, row.id)
    try:
        size = os.stat(path).st_size
    except OSError:
        return {"available": False, "bytes": 0, "duration": 0.0}
    end = row.ended_at or utcnow()
    return {
        "available": True,
        "bytes": size,
        "duration": round((end - row.started_at).total_seconds(), 3),
    }


def session_json(request: web.Request, row: TerminalSession) -> dict[str, Any]:
    live = request.app[BROKER].get(row.id)
    return {
        "id": row.id,
        "target": row.target,
        "owner": row.user_id,
        "status": "live" if row.status == "live" else "ended",
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
        "exit_code": row.exit_code,
        "participants": live.participants() if live is not None else [],
        "recording": _recording(request, row),
    }


def share_json(row: SessionShare) -> dict[str, Any]:
    return {
        "id": row.id,
        "session": row.session_id,
        "role": row.role,
        "passcode_required": row.passcode_hash is not None,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "revoked_at": iso(row.revoked_at),
    }


async def own_session(request: web.Request, user_id: str) -> TerminalSession:
    """The caller's session by id; 404 for unknown ids and for other users' sessions."""
    missing = NotFound("No such session.", code="session_not_found")
    return await request.app[DB].owned(
        TerminalSession, "ses", request.match_info["id"], user_id, missing
    )


@routes.get("/api/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    user = await require_user(request)
    async with request.app[DB].session() as s:
        rows = await s.scalars(
            select(TerminalSession)
            .where(TerminalSession.user_id == user.id)
            .order_by(TerminalSession.started_at.desc())
            .limit(200)
        )
        found = list(rows)
    return json_ok({"sessions": [session_json(request, r) for r in found]})


@routes.get("/api/sessions/{id}")
async def get_session(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_ok(session_json(request, await own_session(request, user.id)))


@routes.delete("/api/sessions/{id}")
async def end_session(request: web.Request) -> web.Response:
    user = await require_user(request)
    row = await own_session(request, user.id)
    live = request.app[BROKER].get(row.id)
    if live is not None:
        live.close(3.0)  # SIGHUP, then SIGKILL after 3 s
    elif row.status == "live":  # held by another hub (several hubs): it ends it
        await commands.end_session(request.app, row.id)
    else:
        raise Conflict("The session has already ended.", code="session_ended")
    return web.Response(status=204)


@routes.post("/api/sessions/{id}/share")
async def share_session(request: web.Request) -> web.Response:
    user = await require_user(request)
    row = await own_session(request, user.id)
    body = await parse_body(request, ShareBody)
    if row.status != "live":
        raise Conflict("Only a live session can be shared.", code="session_ended")
    made = await request.app[SHARES].create(
        row.id, user.id, body.role, body.passcode, body.expires_in
    )
    return json_ok(
        {
            "share": {**share_json(made.row), "token": made.token},
            "url": f"{public_base(request)}/share/{made.token}",
            "expires_at": iso(made.row.expires_at),
        },
        201,
    )


@routes.get("/api/sessions/{id}/shares")
async def list_shares(request: web.Request) -> web.Response:
    user = await require_user(request)
    row = await own_session(request, user.id)
    rows = await request.app[SHARES].list_for(row.id)
    return json_ok({"shares": [share_json(r) for r in rows]})


@routes.delete("/api/sessions/{id}/shares/{share_id}")
async def revoke_share(request: web.Request) -> web.Response:
    user = await require_user(request)
    row = await own_session(request, user.id)
    share = await request.app[SHARES].revoke(row.id, request.match_info["share_id"])
    await commands.kick(request.app, 4403, "The share was revoked.", tag="share", value=share.id)
    return web.Response(status=204)


@routes.get("/api/shares/{token}")
async def describe_share(request: web.Request) -> web.Response:
    """What a share link opens (the link's token is the credential; no sign-in)."""
    share = await request.app[SHARES].resolve(request.match_info["token"])
    async with request.app[DB].session() as s:
        row = await s.get(TerminalSession, share.session_id)
    assert row is not None
    return json_ok({**share_json(share), "target": row.target, "status": row.status})


@routes.get("/api/sessions/{id}/recording")
async def recording(request: web.Request) -> web.StreamResponse:
    token = request.query.get("share")
    if token:  # "private to the owner unless shared"
        passcode = request.query.get("passcode")
        share = await request.app[SHARES].open(token, passcode, client_ip(request))
        if share.session_id != request.match_info["id"]:
            raise NotFound("No such session.", code="session_not_found")
        async with request.app[DB].session() as s:
            row = await s.get(TerminalSession, share.session_id)
        assert row is not None
    else:
        user = await require_user(request)
        row = await own_session(request, user.id)
    path = recording_path(request.app[SETTINGS].recordings, row.id)
    if not path.exists():
        raise NotFound("This session has no recording.", code="recording_not_found")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/x-asciicast",
            "Content-Disposition": f'attachment; filename="{row.id}.cast"',
        },
    )
