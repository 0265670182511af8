"""`GET /api/audit`: the caller's own audit events, newest first."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from common.errors import InvalidRequest
from hub import audit
from hub.api.http import iso, json_ok, require_principal
from hub.db.models import AuditEvent
from hub.state import DB

routes = web.RouteTableDef()
MAX_LIMIT = 500


def event_json(e: AuditEvent) -> dict[str, object]:
    return {
        "id": e.id,
        "action": e.action,
        "target": e.target,
        "ip": e.ip,
        "detail": e.detail or {},
        "created_at": iso(e.created_at),
    }


def _query(request: web.Request) -> tuple[int, datetime | None]:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit must be a number from 1 to {MAX_LIMIT}.", details={"field": "limit"}
        )
    before = None
    if "before" in request.query:
        try:
            before = datetime.fromisoformat(request.query["before"].replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequest(
                "before must be an RFC 3339 time.", details={"field": "before"}
            ) from None
        if before.tzinfo is None:
            raise InvalidRequest("before needs a time zone (Z).", details={"field": "before"})
    return int(raw), before


@routes.get("/api/audit")
async def list_events(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    limit, before = _query(request)
    events = await audit.events_for(request.app[DB], principal.user.id, limit=limit, before=before)
    return json_ok({"events": [event_json(e) for e in events]})
