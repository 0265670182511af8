"""Applying verified Stripe events to subscriptions and plans, each event once.

The event's id is inserted into `billing_events` in the same transaction that applies
it: a redelivery (Stripe retries, or two deliveries racing) hits the primary key and
changes nothing. Stripe does not promise order, so a subscription keeps the `created`
time of the newest event applied and older ones arriving late are ignored, and an
event about a subscription that is not the user's current one does not touch the
user's plan.

- `checkout.session.completed`: the user's subscription and customer are recorded and
  the plan applies (a subscription it replaces is canceled at Stripe);
- `customer.subscription.updated`: active or trialing, the plan applies; canceled,
  unpaid, incomplete_expired or paused, back to the default plan; past_due or
  incomplete, the status only;
- `customer.subscription.deleted`: back to the default plan;
- `invoice.payment_failed`: status `past_due` and an audit event; the plan stays until
  Stripe gives up (then `customer.subscription.deleted`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.billing.plans import PlanBook
from hub.db.engine import Database
from hub.db.models import BillingEvent, Subscription, User, utcnow

log = logging.getLogger("rexec.hub.billing")
ACTIVE = {"active", "trialing"}
LAPSED = {"canceled", "unpaid", "incomplete_expired", "paused"}


@dataclass
class Outcome:
    applied: bool = True
    audits: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)  # superseded subscriptions to end


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])  # an expanded object
    return None


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


class Applier:
    def __init__(self, book: PlanBook) -> None:
        self.book = book

    async def apply(self, db: Database, event: dict[str, Any]) -> Outcome:
        async with db.session() as s:
            s.add(BillingEvent(id=event["id"][:255], type=event["type"][:100]))
            try:
                await s.flush()
            except IntegrityError:
                return Outcome(applied=False)
            outcome = Outcome()
            handler = getattr(self, "_" + event["type"].replace(".", "_"), None)
            if handler is not None:
                created = event.get("created")
                when = created if isinstance(created, int) else 0
                await handler(s, event["data"]["object"], when, outcome)
            try:
                await s.commit()
            except IntegrityError:
                return Outcome(applied=False)
        return outcome

    # -- helpers ----------------------------------------------------------------------

    async def _set_plan(self, s: AsyncSession, user_id: str, plan: str, out: Outcome) -> None:
        old = await s.scalar(select(User.plan).where(User.id == user_id))
        if old is None or old == plan:
            return
        await s.execute(update(User).where(User.id == user_id).values(plan=plan))
        out.audits.append(("plan.changed", user_id, {"from": old, "to": plan, "by": "stripe"}))

    def _plan_of(self, obj: dict[str, Any]) -> str | None:
        plan = _meta(obj).get("plan")
        if isinstance(plan, str) and plan in self.book.plans:
            return plan
        items = obj.get("items")
        data = items.get("data") if isinstance(items, dict) else None
        for item in data if isinstance(data, list) else []:
            price = _str(item.get("price")) if isinstance(item, dict) else None
            for plan_id, spec in self.book:
                if price and spec.stripe_price_id == price:
                    return plan_id
        return None

    async def _find(
        self, s: AsyncSession, subscription_id: str | None, customer: str | None
    ) -> Subscription | None:
        if subscription_id:
            row = await s.scalar(
                select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
            )
            if row is not None:
                return row
        if customer:
            return await s.scalar(
                select(Subscription).where(Subscription.stripe_customer_id == customer)
            )
        return None

    # -- events -----------------------------------------------------------------------

    async def _checkout_session_completed(
        self, s: AsyncSession, obj: dict[str, Any], created: int, out: Outcome
    ) -> None:
        if obj.get("mode") != "subscription":
            return
        user_id = _str(obj.get("client_reference_id")) or _str(_meta(obj).get("user_id"))
        plan = self._plan_of(obj)
        if user_id is None or plan is None or await s.get(User, user_id) is None:
            log.warning("checkout %s names no known user or plan", obj.get("id"))
            return
        subscription_id, customer = _str(obj.get("subscription")), _str(obj.get("customer"))
        row = await s.get(Subscription, user_id)
        if row is None:
            row = Subscription(user_id=user_id, plan=plan, status="active", event_created=0)
            s.add(row)
        elif (
            row.stripe_subscription_id
            and row.stripe_subscription_id != subscription_id
            and (row.status in ACTIVE or row.status == "past_due")
        ):
            out.cancel.append(row.stripe_subscription_id)  # replaced by this one
        row.stripe_subscription_id = subscription_id
        row.stripe_customer_id = customer or row.stripe_customer_id
        row.plan, row.status, row.updated_at = plan, "active", utcnow()
        row.event_created = max(row.event_created, created)
        await self._set_plan(s, user_id, plan, out)

    async def _customer_subscription_updated(
        self, s: AsyncSession, obj: dict[str, Any], created: int, out: Outcome
    ) -> None:
        subscription_id, status = _str(obj.get("id")), obj.get("status")
        if subscription_id is None or not isinstance(status, str):
            return
        row = await self._find(s, subscription_id, None)
        if row is None:
            # The update may overtake checkout.session.completed: find the user by the
            # metadata the Checkout Session put on the subscription.
            user_id = _str(_meta(obj).get("user_id"))
            if user_id is None or await s.get(User, user_id) is None:
                return
            row = await s.get(Subscription, user_id)
            if row is not None and row.stripe_subscription_id not in (None, subscription_id):
                return  # about a subscription the user no longer has
            if row is None:
                plan_id = self._plan_of(obj) or self.book.default
                row = Subscription(user_id=user_id, plan=plan_id, status=status, event_created=0)
                s.add(row)
            row.stripe_subscription_id = subscription_id
        if created < row.event_created:
            return  # older than what we applied
        row.stripe_customer_id = _str(obj.get("customer")) or row.stripe_customer_id
        row.status, row.event_created, row.updated_at = status, created, utcnow()
        plan = self._plan_of(obj) or row.plan
        if status in ACTIVE and plan in self.book.plans:
            row.plan = plan
            await self._set_plan(s, row.user_id, plan, out)
        elif status in LAPSED:
            await self._set_plan(s, row.user_id, self.book.default, out)

    async def _customer_subscription_deleted(
        self, s: AsyncSession, obj: dict[str, Any], created: int, out: Outcome
    ) -> None:
        row = await self._find(s, _str(obj.get("id")), None)
        if row is None:
            return
        row.status, row.updated_at = "canceled", utcnow()
        row.event_created = max(row.event_created, created)
        await self._set_plan(s, row.user_id, self.book.default, out)

    async def _invoice_payment_failed(
        self, s: AsyncSession, obj: dict[str, Any], created: int, out: Outcome
    ) -> None:
        subscription_id = _str(obj.get("subscription"))
        parent = obj.get("parent")
        if subscription_id is None and isinstance(parent, dict):  # newer API versions
            details = parent.get("subscription_details")
            if isinstance(details, dict):
                subscription_id = _str(details.get("subscription"))
        row = await self._find(s, subscription_id, _str(obj.get("customer")))
        if row is None:
            return
        if row.status in ACTIVE:
            row.status, row.updated_at = "past_due", utcnow()
        detail: dict[str, Any] = {"invoice": _str(obj.get("id"))}
        if isinstance(obj.get("attempt_count"), int):
            detail["attempt"] = obj["attempt_count"]
        out.audits.append(("billing.payment_failed", row.user_id, detail))
