"""Progress on stderr for operations that take a while, only when stderr is a terminal:
scripts reading stdout and logs of stderr get nothing extra."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import TextIO

from client.output import size

FRAMES = "|/-\\"
INTERVAL = 0.1


class Progress:
    """`async with Progress("Creating container"):` shows a spinner and the time spent;
    `update(text)` changes the detail shown after the label."""

    def __init__(
        self, label: str, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.detail = ""
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0

    def update(self, detail: str) -> None:
        self.detail = detail

    def bytes(self, done: int, total: int | None) -> None:
        self.detail = f"{size(done)} of {size(total)}" if total else size(done)

    def _draw(self, frame: str) -> None:
        spent = time.monotonic() - self._started
        detail = f" {self.detail}" if self.detail else ""
        self.stream.write(f"\r\x1b[K{frame} {self.label}...{detail} ({spent:.1f}s)")
        self.stream.flush()

    async def _spin(self) -> None:
        i = 0
        while True:
            self._draw(FRAMES[i % len(FRAMES)])
            i += 1
            await asyncio.sleep(INTERVAL)

    async def __aenter__(self) -> Progress:
        self._started = time.monotonic()
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._spin())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self.stream.write("\r\x1b[K")
            self.stream.flush()
