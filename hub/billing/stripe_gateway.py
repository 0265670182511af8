"""The hub's only contact with Stripe, through the official `stripe` library.

Calls go through the library's asyncio client (`AIOHTTPClient`) on a session the hub
owns, so nothing blocks the event loop. `stripe_api_base` points the library at
another server speaking Stripe's API (the tests' local one, or stripe-mock); by
default it is Stripe itself. Webhook payloads are verified by the library
(`stripe.Webhook.construct_event`) against the endpoint's signing secret.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import aiohttp
import stripe

from common.errors import ApiError, InvalidRequest
from hub.billing.plans import PlanSpec

log = logging.getLogger("rexec.hub.stripe")


class PaymentProviderError(ApiError):
    """Stripe refused or could not be reached."""

    status = 502
    default_code = "payment_provider_error"


class StripeGateway:
    def __init__(
        self,
        secret_key: str,
        session: aiohttp.ClientSession,
        api_base: str | None = None,
    ) -> None:
        self.client = stripe.StripeClient(
            secret_key,
            http_client=stripe.AIOHTTPClient(session=session),
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            max_network_retries=1,
        )

    async def checkout(
        self,
        *,
        user_id: str,
        email: str,
        plan_id: str,
        plan: PlanSpec,
        customer_id: str | None,
        success_url: str,
        cancel_url: str,
    ) -> str:
        """Create a Checkout Session for a subscription to the plan; its URL."""
        if plan.stripe_price_id:
            item: dict[str, Any] = {"price": plan.stripe_price_id, "quantity": 1}
        else:
            item = {
                "quantity": 1,
                "price_data": {
                    "currency": plan.currency,
                    "unit_amount": plan.price_cents,
                    "recurring": {"interval": plan.interval},
                    "product_data": {"name": f"Rexec {plan.name}"},
                },
            }
        metadata = {"user_id": user_id, "plan": plan_id}
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [item],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": user_id,
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
        }
        if customer_id:
            params["customer"] = customer_id
        else:
            params["customer_email"] = email
        try:
            session = await self.client.v1.checkout.sessions.create_async(cast(Any, params))
        except stripe.StripeError as exc:
            log.warning("Stripe refused a Checkout Session: %s", exc.user_message or exc)
            raise PaymentProviderError(
                "The payment provider refused the request; try again later."
            ) from None
        if not session.url:
            raise PaymentProviderError("The payment provider gave no checkout page.")
        return session.url

    async def cancel(self, subscription_id: str) -> None:
        """End a subscription now (a change to a plan that needs no payment)."""
        try:
            await self.client.v1.subscriptions.cancel_async(subscription_id)
        except stripe.InvalidRequestError as exc:
            # Already canceled or unknown at Stripe: nothing left to stop.
            log.info("Stripe subscription %s not canceled: %s", subscription_id, exc.code)
        except stripe.StripeError as exc:
            log.warning("Stripe did not cancel %s: %s", subscription_id, exc.user_message or exc)
            raise PaymentProviderError(
                "The payment provider could not cancel the subscription; try again later."
            ) from None


def verify_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event in a webhook delivery, once its signature checks out; else 400."""
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
        event = json.loads(payload)
    except stripe.SignatureVerificationError:
        raise InvalidRequest(
            "The Stripe-Signature header does not verify.", code="invalid_signature"
        ) from None
    except (ValueError, TypeError, AttributeError, KeyError):
        # Signed, but not an event the library can build (not JSON, not an object).
        raise InvalidRequest("The body is not a Stripe event.", details={"field": "body"}) from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise InvalidRequest("The event is not a Stripe event.", details={"field": "body"})
    return event
