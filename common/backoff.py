"""Reconnect delays: capped exponential backoff with full jitter, as a pure generator."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff(
    initial: float = 0.5, factor: float = 2.0, cap: float = 5.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Delays to wait before each retry: jittered in [delay/2, delay], delay doubling to cap."""
    rand = rng or random.Random()  # noqa: S311 - jitter, not security
    delay = initial
    while True:
        yield delay / 2 + rand.random() * delay / 2
        delay = min(cap, delay * factor)
