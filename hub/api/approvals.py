"""Supervised AI execution (API.md): approvals, their decisions, and target policies.

Deciding and changing a policy need the `all` scope (hub/scopes.py) and a person's
credential (hub/approvals/guard.py), so an AI's token can read its own approvals and wait
on them but neither approve them nor loosen the policy that holds them, whatever its
scopes. Every object is the caller's own: 404 for anyone else's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field, field_validator

from common.errors import InvalidRequest
from hub.api.http import Body, client_ip, json_ok, parse_body, require_principal
from hub.approvals.guard import require_person, supervised
from hub.approvals.policy import PolicyBody
from hub.approvals.service import STATUSES, Runner
from hub.execution import ExecRequest
from hub.state import SETTINGS, SUPERVISOR
from hub.targets import Kind, resolve_target
from hub.tokens import Principal

routes = web.RouteTableDef()


class ApproveBody(Body):
    cmd: str | list[str] | None = None

    @field_validator("cmd")
    @classmethod
    def _not_empty(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, str) and not v.strip():
            raise ValueError("cmd must not be empty")
        if isinstance(v, list) and (not v or not v[0]):
            raise ValueError("cmd must be a non-empty argv list")
        return v


class RejectBody(Body):
    reason: str | None = Field(None, max_length=2000)


async def supervised_exec(
    request: web.Request, principal: Principal, target: str, body: ExecRequest, run: Runner
) -> web.Response:
    """Exec as docs/security.md has it: an agent's credential always follows the target's
    policy (whatever `supervised` says); a person's runs at once unless its API token asks
    for supervision."""
    if not supervised(principal.kind, principal.token_id, body.supervised):
        return json_ok(await run(body))
    status, answer = await request.app[SUPERVISOR].submit(
        principal, target, body, run, ip=client_ip(request)
    )
    return json_ok(answer, status)


async def own_target(request: web.Request, user_id: str, kind: str) -> str:
    """The container's or agent's id the path names (by id or name)."""
    only: Kind = "ctr" if kind == "containers" else "agt"
    return await resolve_target(request.app, user_id, request.match_info["id"], (only,))


def _approval(request: web.Request, row: Any) -> web.Response:
    return json_ok(request.app[SUPERVISOR].to_json(row))


@routes.get("/api/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidRequest(
            f"status must be one of {', '.join(STATUSES)}.", details={"field": "status"}
        )
    supervisor = request.app[SUPERVISOR]
    rows = await supervisor.find(principal.user.id, status)
    return json_ok({"approvals": [supervisor.to_json(r) for r in rows]})


@routes.get("/api/approvals/{id}")
async def get_approval(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    supervisor = request.app[SUPERVISOR]
    raw = request.query.get("wait")
    if raw is None:
        return _approval(request, await supervisor.get(principal.user.id, request.match_info["id"]))
    limit = request.app[SETTINGS].approval_max_wait
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= limit:
        raise InvalidRequest(
            f"wait must be a number of seconds from 0 to {int(limit)}.", details={"field": "wait"}
        )
    row = await supervisor.wait(principal.user.id, request.match_info["id"], wait)
    return _approval(request, row)


@routes.post("/api/approvals/{id}/approve")
async def approve(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    require_person(principal.kind, "decide approvals")
    body = await parse_body(request, ApproveBody)
    row = await request.app[SUPERVISOR].approve(
        principal, request.match_info["id"], body.cmd, client_ip(request)
    )
    return _approval(request, row)


@routes.post("/api/approvals/{id}/reject")
async def reject(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    require_person(principal.kind, "decide approvals")
    body = await parse_body(request, RejectBody)
    row = await request.app[SUPERVISOR].reject(
        principal, request.match_info["id"], body.reason, client_ip(request)
    )
    return _approval(request, row)


def _policy_routes(kind: str) -> None:
    base = f"/api/{kind}/{{id}}/policy"

    async def get_policy(request: web.Request) -> web.Response:
        principal = await require_principal(request)
        target = await own_target(request, principal.user.id, kind)
        return json_ok(await request.app[SUPERVISOR].get_policy(target))

    async def put_policy(request: web.Request) -> web.Response:
        principal = await require_principal(request)
        require_person(principal.kind, "change a policy")
        target = await own_target(request, principal.user.id, kind)
        body = await parse_body(request, PolicyBody)
        return json_ok(
            await request.app[SUPERVISOR].set_policy(principal, target, body, client_ip(request))
        )

    def switch(paused: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            principal = await require_principal(request)
            if not paused:  # pausing only tightens: anyone holding `all` may press it
                require_person(principal.kind, "resume AI execution")
            target = await own_target(request, principal.user.id, kind)
            return json_ok(
                await request.app[SUPERVISOR].pause(principal, target, paused, client_ip(request))
            )

        return handler

    routes.get(base)(get_policy)
    routes.put(base)(put_policy)
    routes.post(base + "/pause")(switch(True))
    routes.post(base + "/resume")(switch(False))


for _kind in ("containers", "agents"):
    _policy_routes(_kind)
