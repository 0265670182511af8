"""Billing fixtures: hubs with settings of the test's choosing, and a local Stripe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.accounts.conftest import make_api  # noqa: F401 (a fixture)
from tests.billing.stripe_fake import FakeStripe
from tests.containers.conftest import engine, make_hub  # noqa: F401 (fixtures)


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    fake = await FakeStripe().start()
    yield fake
    await fake.close()
