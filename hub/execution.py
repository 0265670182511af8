"""Running one command to completion (API `exec`): output capture with caps, timeouts.

Shared by every target kind: the caller supplies a started channel-like object.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import Field, field_validator

from hub.api.http import Body


class ExecRequest(Body):
    cmd: str | list[str]
    stdin: str | None = Field(None, max_length=1 << 20)
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = Field(None, max_length=4096)
    timeout: float | None = Field(None, gt=0)
    supervised: bool = False
    # Supervised only: the live session to type an approved command into (docs/approvals.md).
    session: str | None = Field(None, max_length=40)

    @field_validator("cmd")
    @classmethod
    def _cmd_not_empty(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, str) and not v.strip():
            raise ValueError("cmd must not be empty")
        if isinstance(v, list) and (not v or not v[0]):
            raise ValueError("cmd must be a non-empty argv list")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"invalid environment variable name {name!r}")
        return v

    def argv(self) -> list[str]:
        """A shell string runs under `sh -c`; a list runs as it is."""
        return ["/bin/sh", "-c", self.cmd] if isinstance(self.cmd, str) else list(self.cmd)


class ExecChannel(Protocol):
    """A started non-PTY program whose output arrives through callbacks."""

    async def write(self, data: bytes) -> None: ...

    def eof(self) -> None: ...

    def credit(self, size: int) -> None: ...

    def close(self, grace: float = 3.0) -> None: ...


@dataclass
class _Capture:
    limit: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class ExecCollector:
    """Receives a channel's events: captures both streams, always credits the source
    so a chatty program never blocks on output nobody will read."""

    def __init__(self, limit: int) -> None:
        self.stdout = _Capture(limit)
        self.stderr = _Capture(limit)
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.channel: ExecChannel | None = None

    def on_output(self, data: bytes) -> None:
        self.stdout.add(data)
        if self.channel is not None:
            self.channel.credit(len(data))

    def on_stderr(self, data: bytes) -> None:
        self.stderr.add(data)
        if self.channel is not None:
            self.channel.credit(len(data))

    def on_exit(self, code: int) -> None:
        if not self.done.done():
            self.done.set_result(code)


async def collect(
    channel: ExecChannel,
    collector: ExecCollector,
    req: ExecRequest,
    limit: float,
    started: float,
) -> dict[str, Any]:
    """Feed stdin, wait for the exit (killing the program after `limit` seconds), answer.
    `started` is the monotonic time the request began, for duration_ms."""
    collector.channel = channel
    if req.stdin:
        await channel.write(req.stdin.encode())
    channel.eof()
    timed_out = False
    try:
        code = await asyncio.wait_for(asyncio.shield(collector.done), limit)
    except TimeoutError:
        timed_out = True
        channel.close(grace=0.0)
        try:
            code = await asyncio.wait_for(asyncio.shield(collector.done), 10)
        except TimeoutError:
            code = -1
    return {
        "exit_code": code,
        "stdout": collector.stdout.text(),
        "stderr": collector.stderr.text(),
        "stdout_truncated": collector.stdout.truncated,
        "stderr_truncated": collector.stderr.truncated,
        "truncated": collector.stdout.truncated or collector.stderr.truncated,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "timed_out": timed_out,
    }
