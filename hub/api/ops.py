"""Operations endpoints: health, readiness, metrics."""

from __future__ import annotations

from aiohttp import web

from common.errors import Unavailable
from hub.api.http import json_ok
from hub.state import AGENTS, BROKER, CONTAINERS, DB, SETTINGS

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_ok({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[DB].ping()
    except Exception:
        raise Unavailable("The database is not reachable.", code="database_unavailable") from None
    checks = {"database": "ok"}
    containers = request.app[CONTAINERS]
    if request.app[SETTINGS].docker_enabled:
        try:
            await containers.engine.ping()
            checks["docker"] = "ok"
        except Exception:
            raise Unavailable("Docker is not reachable.", code="docker_unavailable") from None
    return json_ok({"status": "ready", "checks": checks})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    sessions = len(request.app[BROKER].sessions)
    agents = len(request.app[AGENTS].live)
    body = (
        "# HELP rexec_sessions_live Live terminal sessions on this hub.\n"
        "# TYPE rexec_sessions_live gauge\n"
        f"rexec_sessions_live {sessions}\n"
        "# HELP rexec_agents_connected Agents connected to this hub.\n"
        "# TYPE rexec_agents_connected gauge\n"
        f"rexec_agents_connected {agents}\n"
    )
    return web.Response(text=body, content_type="text/plain", charset="utf-8")
