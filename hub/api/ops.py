"""Operations endpoints: health, readiness, metrics."""

from __future__ import annotations

from aiohttp import web

from common.errors import Unavailable
from hub.api.http import json_ok
from hub.metrics import CONTENT_TYPE
from hub.openapi import document
from hub.state import CONTAINERS, DB, METRICS, READY_CHECKS, SETTINGS

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
    for name, check in request.app[READY_CHECKS].items():  # e.g. Redis, when configured
        try:
            await check()
        except Exception:
            raise Unavailable(f"{name} is not reachable.", code=f"{name}_unavailable") from None
        checks[name] = "ok"
    return json_ok({"status": "ready", "checks": checks})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This hub's OpenAPI 3.1 document, generated from its routes and models."""
    return json_ok(document(request.app))
