"""Stripe through the official library, against a local server speaking Stripe's wire
format: Checkout for paid plans, and webhooks verified by signature and applied once."""

from __future__ import annotations

import secrets
import time

from hub.settings import HubSettings
from tests.accounts.conftest import MakeApi
from tests.billing.stripe_fake import (
    API_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    checkout_completed,
    event,
    payload_of,
    sign,
    subscription,
)
from tests.support import Api, assert_error

STRIPE = {"stripe_webhook_secret": WEBHOOK_SECRET}


async def stripe_hub(make_api: MakeApi, fake: FakeStripe) -> Api:
    return await make_api(stripe_secret_key=API_KEY, stripe_api_base=fake.url, **STRIPE)


async def deliver(api: Api, payload: bytes, signature: str | None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    async with api.http.post(
        f"{api.base}/api/billing/webhook", data=payload, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def test_subscribe_creates_a_checkout_session(
    make_api: MakeApi, stripe_api: FakeStripe
) -> None:
    api = await stripe_hub(make_api, stripe_api)
    user = await api.sign_up("pay@x.io")
    me = await user.ok("GET", "/api/user")
    answer = await user.ok("POST", "/api/billing/subscribe", {"plan": "pro"})
    assert set(answer) == {"checkout_url"}
    assert answer["checkout_url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    method, path, body, headers = stripe_api.requests[-1]
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert headers["Authorization"] == f"Bearer {API_KEY}" and "Stripe-Version" in headers
    assert body["mode"] == "subscription"
    assert body["client_reference_id"] == me["id"]
    assert body["metadata"] == {"user_id": me["id"], "plan": "pro"}
    assert body["subscription_data"]["metadata"]["plan"] == "pro"
    assert body["customer_email"] == "pay@x.io"
    item = body["line_items"][0]
    assert item["price_data"]["unit_amount"] == "1500"
    assert item["price_data"]["recurring"]["interval"] == "month"
    assert body["success_url"].startswith(api.base)
    events = (await user.ok("GET", "/api/audit"))["events"]
    assert events[0]["action"] == "billing.checkout_started"


async def test_stripe_refusal_is_a_clear_502(make_api: MakeApi, stripe_api: FakeStripe) -> None:
    api = await make_api(stripe_secret_key="sk_test_wrong", stripe_api_base=stripe_api.url)
    user = await api.sign_up("refused@x.io")
    status, body = await user.call("POST", "/api/billing/subscribe", {"plan": "pro"})
    assert_error(status, body, 502, "payment_provider_error")


async def test_webhook_applies_once_and_refuses_bad_signatures(
    make_api: MakeApi, stripe_api: FakeStripe
) -> None:
    api = await stripe_hub(make_api, stripe_api)
    user = await api.sign_up("hook@x.io")
    uid = (await user.ok("GET", "/api/user"))["id"]
    completed = payload_of(checkout_completed(uid, "pro", "sub_1", "cus_1"))
    # Unsigned, wrongly signed, stale or tampered: 400, and nothing changes.
    for signature, payload in (
        (None, completed),
        ("t=1,v1=deadbeef", completed),
        (sign(completed, "whsec_someone_else"), completed),
        (sign(completed, at=int(time.time()) - 3600), completed),
        (sign(completed), completed.replace(b'"pro"', b'"enterprise"')),
        ("garbage", completed),
    ):
        status, body = await deliver(api, payload, signature)
        assert_error(status, body, 400, "invalid_signature")
    assert (await user.ok("GET", "/api/user"))["plan"] == "free"
    # Signed as Stripe signs: applied, and a redelivery changes nothing.
    status, body = await deliver(api, completed, sign(completed))
    assert (status, body) == (200, {"received": True, "duplicate": False})
    status, body = await deliver(api, completed, sign(completed))
    assert (status, body) == (200, {"received": True, "duplicate": True})
    assert (await user.ok("GET", "/api/user"))["plan"] == "pro"
    changes = [
        e for e in (await user.ok("GET", "/api/audit"))["events"] if e["action"] == "plan.changed"
    ]
    assert [c["detail"] for c in changes] == [{"from": "free", "to": "pro", "by": "stripe"}]
    # A failed payment marks the subscription and tells the user, the plan stays.
    failed = payload_of(
        event(
            "invoice.payment_failed",
            {
                "id": "in_1",
                "object": "invoice",
                "customer": "cus_1",
                "subscription": "sub_1",
                "attempt_count": 1,
            },
        )
    )
    assert (await deliver(api, failed, sign(failed)))[0] == 200
    events = (await user.ok("GET", "/api/audit"))["events"]
    assert events[0]["action"] == "billing.payment_failed"
    assert (await user.ok("GET", "/api/user"))["plan"] == "pro"
    # Cancellation: back to the default plan; a late, older update does not revive it.
    now = int(time.time())
    meta = {"user_id": uid, "plan": "pro"}
    deleted = payload_of(
        subscription("customer.subscription.deleted", "sub_1", "cus_1", "canceled", meta, now + 10)
    )
    assert (await deliver(api, deleted, sign(deleted)))[0] == 200
    assert (await user.ok("GET", "/api/user"))["plan"] == "free"
    late = payload_of(
        subscription("customer.subscription.updated", "sub_1", "cus_1", "active", meta, now)
    )
    assert (await deliver(api, late, sign(late)))[0] == 200
    assert (await user.ok("GET", "/api/user"))["plan"] == "free"


async def test_subscription_updates(make_api: MakeApi, stripe_api: FakeStripe) -> None:
    api = await stripe_hub(make_api, stripe_api)
    user = await api.sign_up("upd@x.io")
    uid = (await user.ok("GET", "/api/user"))["id"]
    now = int(time.time())
    # The update can overtake checkout.session.completed: the metadata finds the user.
    sub = f"sub_{secrets.token_hex(4)}"
    active = payload_of(
        subscription(
            "customer.subscription.updated",
            sub,
            "cus_9",
            "active",
            {"user_id": uid, "plan": "enterprise"},
            now,
        )
    )
    assert (await deliver(api, active, sign(active)))[0] == 200
    assert (await user.ok("GET", "/api/user"))["plan"] == "enterprise"
    unpaid = payload_of(
        subscription(
            "customer.subscription.updated",
            sub,
            "cus_9",
            "unpaid",
            {"user_id": uid, "plan": "enterprise"},
            now + 1,
        )
    )
    assert (await deliver(api, unpaid, sign(unpaid)))[0] == 200
    assert (await user.ok("GET", "/api/user"))["plan"] == "free"
    # Unknown event types are acknowledged and ignored.
    other = payload_of(event("customer.created", {"id": "cus_9", "object": "customer"}))
    assert (await deliver(api, other, sign(other)))[0] == 200


async def test_down_to_free_cancels_at_stripe(
    make_api: MakeApi, stripe_api: FakeStripe, settings: HubSettings
) -> None:
    api = await stripe_hub(make_api, stripe_api)
    user = await api.sign_up("down@x.io")
    uid = (await user.ok("GET", "/api/user"))["id"]
    completed = payload_of(checkout_completed(uid, "pro", "sub_down", "cus_down"))
    assert (await deliver(api, completed, sign(completed)))[0] == 200
    status, body = await user.call("POST", "/api/billing/subscribe", {"plan": "pro"})
    assert_error(status, body, 409, "already_subscribed")
    answer = await user.ok("POST", "/api/billing/subscribe", {"plan": "free"})
    assert answer == {"subscription": {"plan": "free", "status": "active"}}
    assert stripe_api.requests[-1][:2] == ("DELETE", "/v1/subscriptions/sub_down")
    assert (await user.ok("GET", "/api/user"))["plan"] == "free"
    # A second checkout reuses the Stripe customer.
    await user.ok("POST", "/api/billing/subscribe", {"plan": "pro"})
    assert stripe_api.requests[-1][2]["customer"] == "cus_down"


async def test_bad_webhook_bodies(make_api: MakeApi, stripe_api: FakeStripe) -> None:
    api = await stripe_hub(make_api, stripe_api)
    for payload in (b"\xff\xfe", b"not json", b"[]", b'{"id": 1}'):
        status, body = await deliver(
            api, payload, sign(payload) if payload != b"\xff\xfe" else "t=1,v1=00"
        )
        assert status == 400, (payload, body)
