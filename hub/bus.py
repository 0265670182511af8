"""Notifications between the hub's parts, and later between hubs.

A topic is a string (`"approval:apr_..."`, `"user:usr_..."`); a message is a JSON-able
dict. `LocalBus` delivers within this process. With Redis configured (issue #11) a
bus with the same interface delivers to every hub, so code that publishes and
subscribes through `Bus` works unchanged across hubs. Delivery is at most once:
a subscriber that must not miss a state change re-reads the state from the
database after subscribing, then waits on the bus for changes.

Each subscription holds a bounded queue; a subscriber that falls `QUEUE` messages
behind loses the oldest ones rather than growing the hub's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

QUEUE = 256  # messages a slow subscriber may fall behind before the oldest are dropped


class Subscription:
    """Messages on one topic, from the moment of subscribing."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)

    def deliver(self, message: dict[str, Any]) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(message)

    async def get(self, wait: float | None = None) -> dict[str, Any] | None:
        """The next message, or None when `wait` seconds pass first."""
        try:
            return await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._queue.get()


class Bus(Protocol):
    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...


class LocalBus:
    """In-process delivery: the bus of a hub that runs alone."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        self.deliver(topic, message)

    def deliver(self, topic: str, message: dict[str, Any]) -> None:
        for sub in tuple(self._subs.get(topic, ())):
            sub.deliver(message)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        sub = Subscription(topic)
        self._subs.setdefault(topic, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[topic]

    @property
    def topics(self) -> int:
        return len(self._subs)

    async def close(self) -> None:
        self._subs.clear()
