"""A local stand-in for Stripe's API on 127.0.0.1, answering in Stripe's wire format
(form-encoded requests with bracketed keys, JSON objects with `object` and `id`,
errors as `{"error": {"type", "message", ...}}`), and webhook deliveries signed as
Stripe signs them (`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.payload">`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

API_KEY = "sk_test_rexec_local"
WEBHOOK_SECRET = "whsec_rexec_local_test"


def unflatten(form: dict[str, str]) -> dict[str, Any]:
    """`line_items[0][price_data][currency]=usd` back into nested objects."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(value: Any) -> Any:
        if isinstance(value, dict):
            if value and all(k.isdigit() for k in value):
                return [lists(value[k]) for k in sorted(value, key=int)]
            return {k: lists(v) for k, v in value.items()}
        if isinstance(value, list):
            return [lists(v) for v in value]
        return value

    return lists(out)


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []
        self.server: TestServer | None = None
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self.create_checkout)
        app.router.add_delete("/v1/subscriptions/{id}", self.cancel_subscription)
        self.app = app

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def start(self) -> FakeStripe:
        self.server = TestServer(self.app, host="127.0.0.1", port=0)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def _error(self, status: int, kind: str, message: str) -> web.Response:
        return web.json_response(
            {"error": {"type": kind, "message": message}},
            status=status,
            headers={"Request-Id": f"req_{secrets.token_hex(7)}"},
        )

    async def _check(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._error(401, "invalid_request_error", "Invalid API Key provided.")
        body = unflatten(dict((await request.post()).items()))  # type: ignore[arg-type]
        self.requests.append((request.method, request.path, body, dict(request.headers)))
        return body

    async def create_checkout(self, request: web.Request) -> web.Response:
        body = await self._check(request)
        if isinstance(body, web.Response):
            return body
        if body.get("mode") != "subscription" or not body.get("line_items"):
            return self._error(400, "invalid_request_error", "Missing required param: mode.")
        sid = f"cs_test_{secrets.token_hex(12)}"
        now = int(time.time())
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "open",
            "payment_status": "unpaid",
            "url": f"https://checkout.stripe.com/c/pay/{sid}",
            "client_reference_id": body.get("client_reference_id"),
            "customer": body.get("customer"),
            "customer_email": body.get("customer_email"),
            "metadata": body.get("metadata", {}),
            "success_url": body.get("success_url"),
            "cancel_url": body.get("cancel_url"),
            "subscription": None,
            "livemode": False,
            "created": now,
            "expires_at": now + 86400,
        }
        return web.json_response(session, headers={"Request-Id": f"req_{secrets.token_hex(7)}"})

    async def cancel_subscription(self, request: web.Request) -> web.Response:
        body = await self._check(request)
        if isinstance(body, web.Response):
            return body
        return web.json_response(
            {
                "id": request.match_info["id"],
                "object": "subscription",
                "status": "canceled",
                "canceled_at": int(time.time()),
                "livemode": False,
            }
        )


def event(kind: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created if created is not None else int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    stamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"


def checkout_completed(user_id: str, plan: str, sub: str, customer: str) -> dict[str, Any]:
    return event(
        "checkout.session.completed",
        {
            "id": f"cs_test_{secrets.token_hex(8)}",
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "client_reference_id": user_id,
            "customer": customer,
            "subscription": sub,
            "metadata": {"user_id": user_id, "plan": plan},
        },
    )


def subscription(
    kind: str,
    sub: str,
    customer: str,
    status: str,
    meta: dict[str, str],
    created: int | None = None,
) -> dict[str, Any]:
    return event(
        kind,
        {
            "id": sub,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "metadata": meta,
            "items": {"object": "list", "data": []},
        },
        created,
    )


def payload_of(evt: dict[str, Any]) -> bytes:
    return json.dumps(evt, indent=2).encode()
