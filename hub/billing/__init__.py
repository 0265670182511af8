"""Billing: plans and their limits, usage metering, Stripe subscriptions."""
