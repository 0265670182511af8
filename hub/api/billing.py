"""Billing endpoints (API.md: Billing): plans, subscribing, usage, Stripe's webhook."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from hub.api.http import Body, client_ip, json_ok, parse_body, require_principal
from hub.state import BILLING

routes = web.RouteTableDef()


class SubscribeBody(Body):
    plan: str = Field(min_length=1, max_length=40)


@routes.get("/api/billing/plans")
async def plans(request: web.Request) -> web.Response:
    return json_ok({"plans": request.app[BILLING].plans_json()})


@routes.post("/api/billing/subscribe")
async def subscribe(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse_body(request, SubscribeBody)
    base = f"{request.scheme}://{request.host}"
    answer = await request.app[BILLING].subscribe(
        principal.user, body.plan, base, client_ip(request)
    )
    return json_ok(answer)


@routes.get("/api/billing/usage")
async def usage(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    return json_ok(await request.app[BILLING].usage_json(principal.user))


@routes.post("/api/billing/webhook")
async def webhook(request: web.Request) -> web.Response:
    """Stripe's deliveries: verified by signature, applied once per event id."""
    payload = await request.read()
    applied = await request.app[BILLING].webhook(payload, request.headers.get("Stripe-Signature"))
    return json_ok({"received": True, "duplicate": not applied})
