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
import os
import time
from pathlib import Path
from typing import Any

POS = ".pos"


def recording_path(directory: Path, session_id: str) -> Path:
    return directory / f"{session_id}.cast"


class Recorder:
    """A Sink that writes asciicast v2 lines."""

    def __init__(self, path: Path, *, started: float, cols: int, rows: int, title: str) -> None:
        self.path = path
        self.started = started  # wall-clock start of the session (event times count from it)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.offset: int | None = None  # session output offset of the next byte we get
        self.recorded = 0
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

    def _line(self, kind: str, data: str) -> bytes:
        t = round(max(time.time() - self.started, 0.0), 6)
        return (json.dumps([t, kind, data]) + "\n").encode()

    def _write(self, lines: bytes, recorded: int) -> None:
        os.write(self._fd, lines)
        os.pwrite(self._pos_fd, f"{recorded:<20d}".encode(), 0)

    async def send_bytes(self, data: bytes) -> None:
        start = self.offset if self.offset is not None else self.recorded
        self.offset = start + len(data)
        if self.offset <= self.recorded:
            return  # already in the file (output replayed after a restart)
        if start < self.recorded:
            data = data[self.recorded - start :]
        self.recorded = self.offset
        text = self._decoder.decode(data)
        if text:
            await asyncio.to_thread(self._write, self._line("o", text), self.recorded)

    async def send_text(self, text: str) -> None:
        message: dict[str, Any] = json.loads(text)
        kind = message.get("type")
        if kind == "session" and isinstance(message.get("offset"), int):
            self.offset = message["offset"]
        elif kind == "resize":
            line = self._line("r", f"{message['cols']}x{message['rows']}")
            await asyncio.to_thread(self._write, line, self.recorded)
        elif kind == "marker":
            line = self._line("m", str(message.get("label", "")))
            await asyncio.to_thread(self._write, line, self.recorded)

    async def close(self, code: int, reason: str) -> None:
        tail = self._decoder.decode(b"", final=True)
        if tail:
            await asyncio.to_thread(self._write, self._line("o", tail), self.recorded)
        os.close(self._fd)
        os.close(self._pos_fd)
