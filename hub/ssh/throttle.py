"""Per-source throttling of unauthenticated SSH connections (DHEat, CVE-2002-20001).

Every new connection costs the hub a key exchange before anyone is authenticated, so a
single address opening connections as fast as it can burns the hub's CPU. Like
OpenSSH's `PerSourceMaxStartups` and `PerSourcePenalties`, each source address may have
only a few connections still authenticating, and may open new ones only at a bounded
rate (a token bucket). A refused connection is dropped before the server's banner, so
it costs no cryptography at all. State is per hub process and bounded in addresses.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_PENDING = 10  # connections of one address still authenticating
BURST = 30  # new connections one address may open at once
RATE = 10.0  # new connections per second one address may open after that (< ssh-audit's 20)
MAX_SOURCES = 10_000  # addresses remembered; the least recently seen go first


@dataclass
class _Source:
    tokens: float
    stamp: float
    pending: int = 0


class SourceThrottle:
    """Admit or refuse new connections by source address."""

    def __init__(
        self,
        *,
        max_pending: int = MAX_PENDING,
        burst: int = BURST,
        rate: float = RATE,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_pending = max_pending
        self.burst = burst
        self.rate = rate
        self.max_sources = max_sources
        self.clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def admit(self, address: str) -> bool:
        """Whether a new connection from `address` may start; if so it counts as pending
        until `settled`."""
        now = self.clock()
        source = self._sources.get(address)
        if source is None:
            source = self._sources[address] = _Source(tokens=float(self.burst), stamp=now)
            self._forget_oldest()
        self._sources.move_to_end(address)
        source.tokens = min(float(self.burst), source.tokens + (now - source.stamp) * self.rate)
        source.stamp = now
        if source.pending >= self.max_pending or source.tokens < 1:
            return False
        source.tokens -= 1
        source.pending += 1
        return True

    def settled(self, address: str) -> None:
        """An admitted connection authenticated or went away: no longer pending."""
        source = self._sources.get(address)
        if source is not None and source.pending > 0:
            source.pending -= 1

    def _forget_oldest(self) -> None:
        while len(self._sources) > self.max_sources:
            self._sources.popitem(last=False)
