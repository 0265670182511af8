"""Container endpoints (API.md: Containers)."""

from __future__ import annotations

from aiohttp import web

from hub import commands
from hub.api.approvals import supervised_exec
from hub.api.http import json_ok, parse_body, require_principal, require_user
from hub.containers.service import CreateContainer
from hub.execution import ExecRequest
from hub.state import CONTAINERS, SETTINGS
from hub.targets import resolve_target

routes = web.RouteTableDef()


@routes.post("/api/containers")
async def create(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, CreateContainer)
    service = request.app[CONTAINERS]
    row = await service.create(user.id, body)
    return json_ok(service.to_json(row), 201)


@routes.get("/api/images")
async def images(request: web.Request) -> web.Response:
    """The catalog a container is created from (the names `image` accepts)."""
    await require_user(request)
    settings = request.app[SETTINGS]
    return json_ok(
        {
            "images": [
                {"name": name, "image": ref, "default": name == settings.default_image}
                for name, ref in sorted(settings.images.items())
            ]
        }
    )


@routes.get("/api/containers")
async def list_containers(request: web.Request) -> web.Response:
    user = await require_user(request)
    service = request.app[CONTAINERS]
    return json_ok({"containers": [service.to_json(c) for c in await service.list_for(user.id)]})


@routes.get("/api/containers/{id}")
async def get(request: web.Request) -> web.Response:
    user = await require_user(request)
    service = request.app[CONTAINERS]
    return json_ok(service.to_json(await service.get(user.id, request.match_info["id"])))


@routes.delete("/api/containers/{id}")
async def delete(request: web.Request) -> web.Response:
    user = await require_user(request)
    service = request.app[CONTAINERS]
    row = await service.get(user.id, request.match_info["id"])
    # SSH connections to it are told why first (terminal sockets hear it from the service).
    await commands.kick(
        request.app, 4404, "The container was deleted.", tag="target", value=row.id, here_first=True
    )
    await service.delete(user.id, row.id)
    return web.Response(status=204)


@routes.post("/api/containers/{id}/exec")
async def exec_in_container(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    user = principal.user
    service = request.app[CONTAINERS]
    # 404 before looking at the body; the path names the container by id or name
    target = await resolve_target(request.app, user.id, request.match_info["id"], ("ctr",))
    body = await parse_body(request, ExecRequest)
    return await supervised_exec(
        request, principal, target, body, lambda req: service.exec(user.id, target, req)
    )
