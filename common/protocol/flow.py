"""Credit-based flow control for one direction of one channel (after h2's windows).

The receiver grants the sender a number of bytes; the sender spends them on data
and stops when none are left, so a reader that stops reading makes the program
at the far end block on its PTY instead of growing anybody's memory.
"""

from __future__ import annotations

from common.errors import ProtocolError

MAX_WINDOW = 2**31 - 1


class Window:
    """How many bytes one side may still send on a channel."""

    __slots__ = ("_available",)

    def __init__(self, initial: int) -> None:
        if not 0 <= initial <= MAX_WINDOW:
            raise ValueError(f"window {initial} out of range")
        self._available = initial

    @property
    def available(self) -> int:
        return self._available

    def consume(self, size: int, error: type[ProtocolError]) -> None:
        """Spend `size` bytes; overspending is a protocol error of the sender."""
        if size > self._available:
            raise error(f"flow control: {size} bytes sent with {self._available} credit")
        self._available -= size

    def grant(self, size: int, error: type[ProtocolError]) -> None:
        """Return `size` bytes of credit; the window may not exceed MAX_WINDOW."""
        if size <= 0 or self._available + size > MAX_WINDOW:
            raise error(f"invalid credit of {size} bytes")
        self._available += size
