"""Recording sessions as asciicast v2, crash-safe, without blocking the loop.

The recorder is a hidden client of its session: it receives output through the same
bounded queue as any client (so a slow disk paces the program instead of growing
memory) and appends complete event lines with one `write` each, from a thread. A hub
killed with -9 leaves a file readable up to its last write. A small `.pos` file
beside it records the output offset written so far, so a session taken up again after
a restart appends each byte once.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

RECORD_ATTEMPTS = 4  # tries to put a closed recording's size on record
log = logging.getLogger("rexec.hub.recorder")
POS = ".pos"
MERGE = 0.02  # seconds: output this close together is one event
FLUSH = 0.25  # seconds: the longest an event waits to be written
BATCH = 64 << 10  # bytes: write at once when this much is waiting


def recording_path(directory: Path, session_id: str) -> Path:
    return directory / f"{session_id}.cast"


class Recorder:
    """A Sink that writes asciicast v2 lines."""

    def __init__(
        self,
        path: Path,
        *,
        started: float,
        cols: int,
        rows: int,
        title: str,
        on_closed: Callable[[int, float], Awaitable[None]] | None = None,
    ) -> None:
        self.path = path
        self.on_closed = on_closed  # told the file's size and the duration, for metering
        self.started = started  # wall-clock start of the session (event times count from it)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.offset: int | None = None  # session output offset of the next byte we get
        self.recorded = 0
        self._raw = bytearray()  # output not yet turned into an event
        self._raw_at = 0.0
        self._lines: list[bytes] = []  # event lines not yet written
        self._timer: asyncio.TimerHandle | None = None
        self._background: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        pos = path.with_suffix(POS)
        fresh = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._pos_fd = os.open(pos, os.O_RDWR | os.O_CREAT, 0o600)
        if fresh:
            header = {
                "version": 2,
                "width": cols,
                "height": rows,
                "timestamp": int(started),
                "title": title,
                "env": {"TERM": "xterm-256color"},
            }
            os.write(self._fd, (json.dumps(header) + "\n").encode())
        else:
            raw = os.pread(self._pos_fd, 32, 0).strip()
            self.recorded = int(raw) if raw.isdigit() else 0
        self.size = os.fstat(self._fd).st_size  # bytes in the file, for metering

    def _line(self, kind: str, data: str, at: float | None = None) -> bytes:
        t = round(max((at or time.time()) - self.started, 0.0), 6)
        return (json.dumps([t, kind, data]) + "\n").encode()

    def _write(self, lines: bytes, recorded: int) -> None:
        self.size += os.write(self._fd, lines)
        os.pwrite(self._pos_fd, f"{recorded:<20d}".encode(), 0)

    # Output arrives in small pieces (a PTY read is often 1-4 KB). Pieces that follow
    # each other within MERGE seconds become one event, and events are written in
    # batches at least every FLUSH seconds: few syscalls, and a file at most FLUSH
    # behind the screen when the hub dies.

    def _seal(self) -> None:
        """Turn the output gathered so far into an event line waiting to be written."""
        if self._raw:
            text = self._decoder.decode(bytes(self._raw))
            if text:
                self._lines.append(self._line("o", text, self._raw_at))
            self._raw.clear()

    async def _flush(self) -> None:
        async with self._lock:  # one write at a time keeps the lines in order
            self._seal()
            if self._lines:
                lines, self._lines = b"".join(self._lines), []
                await asyncio.to_thread(self._write, lines, self.recorded)

    def _schedule(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(FLUSH, self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer = None
        self._background = asyncio.get_running_loop().create_task(self._flush())

    async def send_bytes(self, data: bytes) -> None:
        start = self.offset if self.offset is not None else self.recorded
        self.offset = start + len(data)
        if self.offset <= self.recorded:
            return  # already in the file (output replayed after a restart)
        if start < self.recorded:
            data = data[self.recorded - start :]
        self.recorded = self.offset
        now = time.time()
        if self._raw and (now - self._raw_at > MERGE or len(self._raw) >= BATCH):
            self._seal()
        if not self._raw:
            self._raw_at = now
        self._raw += data
        if len(self._raw) + sum(len(x) for x in self._lines) >= BATCH:
            await self._flush()  # the writer waits for the disk: that paces the program
        else:
            self._schedule()

    async def send_text(self, text: str) -> None:
        message: dict[str, Any] = json.loads(text)
        kind = message.get("type")
        if kind == "session" and isinstance(message.get("offset"), int):
            self.offset = message["offset"]
        elif kind == "resize":
            self._seal()
            self._lines.append(self._line("r", f"{message['cols']}x{message['rows']}"))
            self._schedule()
        elif kind == "marker":
            self.mark(str(message.get("label", "")))

    def mark(self, label: str) -> None:
        """A marker event (`[t, "m", label]`): players can jump from one to the next."""
        self._seal()
        self._lines.append(self._line("m", label))
        self._schedule()

    async def close(self, code: int, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._background is not None:
            await self._background
        await self._flush()
        tail = self._decoder.decode(b"", final=True)
        if tail:
            await asyncio.to_thread(self._write, self._line("o", tail), self.recorded)
        os.close(self._fd)
        os.close(self._pos_fd)
        if self.on_closed is not None:
            duration = max(time.time() - self.started, 0.0)
            for attempt in range(RECORD_ATTEMPTS):
                try:  # a busy database (SQLite locked under load) gets a few more tries
                    await self.on_closed(self.size, duration)
                    break
                except Exception:  # metering must not be lost without a trace
                    if attempt == RECORD_ATTEMPTS - 1:
                        log.warning(
                            "recording %s: its size was not recorded",
                            self.path.name,
                            exc_info=True,
                        )
                    else:
                        await asyncio.sleep(0.5 * 2**attempt)
