"""Billing as the API and the admin command see it: plans, usage, subscribing, webhooks,
and the cleanup contexts that run metering with the hub.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from sqlalchemy import select, update

from common.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from hub import audit
from hub.billing import usage
from hub.billing.plans import PlanBook
from hub.billing.webhooks import ACTIVE, Applier
from hub.db.engine import Database
from hub.db.models import Subscription, User, utcnow
from hub.settings import HubSettings
from hub.state import BILLING, BROKER, CONTAINERS, DB, SETTINGS

if TYPE_CHECKING:  # the stripe library is imported only where Stripe is used
    from hub.billing.stripe_gateway import StripeGateway

log = logging.getLogger("rexec.hub.billing")


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class Billing:
    def __init__(self, db: Database, settings: HubSettings, gateway: StripeGateway | None) -> None:
        self.db = db
        self.settings = settings
        self.gateway = gateway
        self.book = PlanBook.from_settings(settings)
        self.applier = Applier(self.book)

    def plans_json(self) -> list[dict[str, Any]]:
        return [self.book.to_json(plan_id) for plan_id, _ in self.book]

    async def usage_json(self, user: User) -> dict[str, Any]:
        start, end = usage.month_of()
        plan_id = self.book.effective_id(user.plan)
        return {
            "plan": plan_id,
            "period_start": _iso(start),
            "period_end": _iso(end),
            "usage": await usage.totals(self.db, user.id, start, end),
            "limits": self.book.get(plan_id).limits_json(),
        }

    async def subscribe(
        self, user: User, plan_id: str, base_url: str, ip: str | None
    ) -> dict[str, Any]:
        plan = self.book.require(plan_id)
        async with self.db.session() as s:
            sub = await s.get(Subscription, user.id)
        paid = sub is not None and sub.stripe_subscription_id and sub.status != "canceled"
        if plan.price_cents == 0:
            if paid and sub is not None and sub.stripe_subscription_id:
                if self.gateway is None:
                    raise _not_configured("cancel the paid subscription")
                await self.gateway.cancel(sub.stripe_subscription_id)
                async with self.db.session() as s:
                    await s.execute(
                        update(Subscription)
                        .where(Subscription.user_id == user.id)
                        .values(status="canceled", updated_at=utcnow())
                    )
                    await s.commit()
            await self.set_plan(user.id, plan_id, by="user", ip=ip)
            return {"subscription": {"plan": plan_id, "status": "active"}}
        if self.gateway is None:
            raise _not_configured("take payments")
        if user.plan == plan_id and sub is not None and sub.status in ACTIVE:
            raise Conflict(f"You are on the {plan.name} plan already.", code="already_subscribed")
        base = (self.settings.public_url or base_url).rstrip("/")
        url = await self.gateway.checkout(
            user_id=user.id,
            email=user.email,
            plan_id=plan_id,
            plan=plan,
            customer_id=sub.stripe_customer_id if sub is not None else None,
            success_url=self.settings.billing_success_url or f"{base}/?billing=success",
            cancel_url=self.settings.billing_cancel_url or f"{base}/?billing=cancel",
        )
        await audit.record(
            self.db, "billing.checkout_started", user_id=user.id, ip=ip, detail={"plan": plan_id}
        )
        return {"checkout_url": url}

    async def set_plan(self, user_id: str, plan_id: str, *, by: str, ip: str | None = None) -> None:
        self.book.require(plan_id)
        async with self.db.session() as s:
            old = await s.scalar(select(User.plan).where(User.id == user_id))
            if old is None:
                raise NotFound("No such user.", code="user_not_found")
            await s.execute(update(User).where(User.id == user_id).values(plan=plan_id))
            await s.commit()
        if old != plan_id:
            await audit.record(
                self.db,
                "plan.changed",
                user_id=user_id,
                ip=ip,
                detail={"from": old, "to": plan_id, "by": by},
            )

    async def set_plan_by_email(self, email: str, plan_id: str) -> str:
        """The admin command's way in; answers the user's id."""
        async with self.db.session() as s:
            user_id = await s.scalar(select(User.id).where(User.email == email.strip().lower()))
        if user_id is None:
            raise NotFound(f"No account has the email {email}.", code="user_not_found")
        await self.set_plan(user_id, plan_id, by="admin")
        return user_id

    async def webhook(self, payload: bytes, signature: str | None) -> bool:
        """Apply a verified event; False when it had been applied already."""
        secret = self.settings.stripe_webhook_secret
        if secret is None:
            raise InvalidRequest(
                "Stripe webhooks are not configured on this hub (REXEC_STRIPE_WEBHOOK_SECRET).",
                code="payments_not_configured",
            )
        from hub.billing.stripe_gateway import verify_event

        event = verify_event(payload, signature, secret.get_secret_value())
        outcome = await self.applier.apply(self.db, event)
        if not outcome.applied:
            log.info("Stripe event %s was applied already", event["id"])
            return False
        for action, user_id, detail in outcome.audits:
            await audit.record(self.db, action, user_id=user_id, detail=detail)
        for subscription_id in outcome.cancel:
            if self.gateway is not None:
                try:
                    await self.gateway.cancel(subscription_id)
                except Exception as exc:
                    log.warning("could not end superseded subscription: %r", exc)
        return True


def _not_configured(what: str) -> Unprocessable:
    return Unprocessable(
        f"This hub is not set up to {what} (no Stripe key); an administrator can set "
        "your plan with `rexec-hub user plan`.",
        code="payments_not_configured",
    )


async def billing_context(app: web.Application) -> AsyncIterator[None]:
    """After the container service: billing, and the usage heartbeat (which waits for
    the reconcile, so it never beats for a container that has vanished)."""
    settings, db = app[SETTINGS], app[DB]
    http: aiohttp.ClientSession | None = None
    gateway = None
    if settings.stripe_secret_key is not None:
        from hub.billing.stripe_gateway import StripeGateway

        http = aiohttp.ClientSession()
        gateway = StripeGateway(
            settings.stripe_secret_key.get_secret_value(), http, settings.stripe_api_base
        )
    app[BILLING] = Billing(db, settings, gateway)
    broker, containers = app[BROKER], app[CONTAINERS]

    async def settled() -> None:
        if containers.available:
            await containers.ready.wait()

    heartbeat = usage.Heartbeat(
        db, settings.usage_heartbeat_interval, lambda: list(broker.sessions), settled
    )
    heartbeat.start()
    yield
    await heartbeat.stop()
    if http is not None:
        await http.close()
