"""Programs in containers: a PTY session source and a plain exec, over the engine's
raw exec streams. Output is read only while there is credit, as for agents."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from hub.containers.engine import Engine, ExecStream, demux
from hub.execution import ExecCollector
from hub.sessions.source import Source

log = logging.getLogger("rexec.hub.containers")
READ_SIZE = 64 << 10
LOGIN_SHELL = [
    "/bin/sh",
    "-c",
    "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi",
]


async def exit_code(engine: Engine, exec_id: str) -> int:
    """The exec's exit code once the engine has it (it can lag the stream's end)."""
    for _ in range(50):
        try:
            info = await engine.exec_inspect(exec_id)
        except Exception:
            return 255  # the container is gone
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        await asyncio.sleep(0.02)
    return 255


class _Exec:
    """Signals and their escalation, shared by both kinds."""

    def __init__(self, engine: Engine, exec_id: str, stream: ExecStream) -> None:
        self.engine = engine
        self.exec_id = exec_id
        self.stream = stream
        self.done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def finished(self) -> bool:
        return self.done.is_set()

    def close(self, grace: float = 3.0) -> None:
        if not self.finished:
            self._spawn(self._terminate(grace))

    async def _terminate(self, grace: float) -> None:
        if grace > 0:
            await self.engine.exec_signal(self.exec_id, signal.SIGHUP)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), grace)
        if not self.finished:
            await self.engine.exec_signal(self.exec_id, signal.SIGKILL)


class ContainerPty(_Exec, Source):
    """An interactive program with a TTY in a container: a session source."""

    def __init__(self, engine: Engine, exec_id: str, stream: ExecStream, window: int) -> None:
        super().__init__(engine, exec_id, stream)
        self._window = window
        self._credit = asyncio.Event()
        self._resizing: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        engine: Engine,
        docker_id: str,
        command: list[str] | None,
        *,
        cols: int,
        rows: int,
        window: int,
        user: str = "",
        env: dict[str, str] | None = None,
    ) -> ContainerPty:
        exec_id = await engine.exec_create(
            docker_id,
            command or LOGIN_SHELL,
            tty=True,
            env={"TERM": "xterm-256color", **(env or {})},
            user=user,
        )
        stream = await engine.exec_start(exec_id, tty=True)
        await engine.exec_resize(exec_id, cols, rows)
        return cls(engine, exec_id, stream, window)

    def begin(self) -> None:
        self._spawn(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                while self._window <= 0:
                    self._credit.clear()
                    await self._credit.wait()
                data = await self.stream.reader.read(min(self._window, READ_SIZE))
                if not data:
                    break
                self._window -= len(data)
                if self.events is not None:
                    self.events.on_output(data)
        except (ConnectionError, OSError) as exc:
            log.debug("exec %s stream ended: %r", self.exec_id, exc)
        self.stream.close()
        code = await exit_code(self.engine, self.exec_id)
        self.done.set()
        if self.events is not None:
            self.events.on_exit(code)

    async def write(self, data: bytes) -> None:
        if self._resizing is not None:  # keys typed after a resize see the new size
            with contextlib.suppress(Exception):
                await asyncio.shield(self._resizing)
        if self.finished or self.stream.writer.is_closing():
            return
        self.stream.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.stream.writer.drain()

    def resize(self, cols: int, rows: int) -> None:
        """A resize is a call to the engine, slower than a write on the stream: input
        that follows it waits for it, so a command typed after it sees the new size."""
        if self.finished:
            return
        previous = self._resizing

        async def apply() -> None:
            if previous is not None:  # resizes land in the order they were asked for
                with contextlib.suppress(Exception):
                    await previous
            await self.engine.exec_resize(self.exec_id, cols, rows)

        task = asyncio.get_running_loop().create_task(apply())
        self._resizing = task
        self._tasks.add(task)
        task.add_done_callback(self._resize_done)

    def _resize_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._resizing is task:
            self._resizing = None
        if not task.cancelled() and task.exception() is not None:
            log.debug("exec %s resize failed: %r", self.exec_id, task.exception())

    def credit(self, size: int) -> None:
        self._window += size
        self._credit.set()


class ContainerExec(_Exec):
    """A command without a TTY: stdout and stderr kept apart, for the exec API."""

    def __init__(self, engine: Engine, exec_id: str, stream: ExecStream) -> None:
        super().__init__(engine, exec_id, stream)
        self.collector: ExecCollector | None = None

    def listen(self, collector: ExecCollector) -> None:
        self.collector = collector
        self._spawn(self._pump())

    async def _pump(self) -> None:
        assert self.collector is not None
        try:
            while (frame := await demux(self.stream.reader, 1 << 20)) is not None:
                stream, data = frame
                if stream == 2:
                    self.collector.on_stderr(data)
                else:
                    self.collector.on_output(data)
        except (ConnectionError, OSError):
            pass
        self.stream.close()
        code = await exit_code(self.engine, self.exec_id)
        self.done.set()
        self.collector.on_exit(code)

    async def write(self, data: bytes) -> None:
        if not self.stream.writer.is_closing():
            self.stream.writer.write(data)
            with contextlib.suppress(ConnectionError):
                await self.stream.writer.drain()

    def eof(self) -> None:
        if not self.stream.writer.is_closing() and self.stream.writer.can_write_eof():
            with contextlib.suppress(OSError):
                self.stream.writer.write_eof()

    def credit(self, size: int) -> None:
        """Output is captured up to a cap and the rest dropped, so nothing to pace."""
