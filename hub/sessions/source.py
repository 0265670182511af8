"""The interface every terminal source implements (agent channel, Docker exec, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol


class SourceEvents(Protocol):
    """What a source reports to its session."""

    def on_output(self, data: bytes) -> None: ...

    def on_exit(self, code: int) -> None: ...


class Source(ABC):
    """A running program with a PTY. Output is flow-controlled: the source sends at
    most `window` bytes beyond what the session has credited back."""

    events: SourceEvents | None = None

    def resume_from(self, offset: int | None) -> int:
        """Only for sources taken up again after a hub restart: start output at `offset`
        (None: as far back as the source still can); returns the offset it starts at."""
        raise NotImplementedError

    def begin(self) -> None:  # noqa: B027 - optional hook
        """Called once `events` is set: a source that pulls its output starts here."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Keystrokes; may wait when the path to the PTY is full (backpressure)."""

    @abstractmethod
    def resize(self, cols: int, rows: int) -> None: ...

    @abstractmethod
    def credit(self, size: int) -> None:
        """`size` bytes of output were delivered; the source may send that much more."""

    @abstractmethod
    def close(self, grace: float = 3.0) -> None:
        """End the program (SIGHUP, then SIGKILL after `grace`); on_exit follows."""
