"""Programs the agent runs for the hub: a PTY (interactive) or a plain exec.

Output is read only while the channel has credit, so a hub or client that stops
reading makes the program block on its PTY/pipe, as with SSH windows. Nothing here
blocks the event loop: the PTY master is non-blocking and watched with add_reader,
the child's exit with a pidfd, and signals escalate on timers instead of sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import pwd
import signal
import struct
import termios
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ptyprocess import PtyProcess

from common.protocol.messages import STDERR, STDOUT, Open

log = logging.getLogger("rexec.agent.channels")
READ_SIZE = 64 << 10
MAX_PENDING_INPUT = 1 << 20  # keystrokes waiting for room in the PTY


class Port:
    """What a channel needs from the link."""

    def __init__(
        self,
        available: Callable[[int], int],
        wait_credit: Callable[[int], Awaitable[None]],
        send_data: Callable[[int, bytes, int], Awaitable[None]],
        send_exit: Callable[[int, int], Awaitable[None]],
    ) -> None:
        self.available = available
        self.wait_credit = wait_credit
        self.send_data = send_data
        self.send_exit = send_exit


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the code, or 128 + the signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def login_environment(extra: dict[str, str]) -> tuple[dict[str, str], str, str]:
    """Environment, home and shell of the user the agent runs as."""
    entry = pwd.getpwuid(os.getuid())
    shell = entry.pw_shell if entry.pw_shell and os.path.exists(entry.pw_shell) else "/bin/sh"
    env = {
        "HOME": entry.pw_dir,
        "USER": entry.pw_name,
        "LOGNAME": entry.pw_name,
        "SHELL": shell,
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TERM": "xterm-256color",
    }
    env.update(extra)
    return env, entry.pw_dir, shell


class Channel(ABC):
    def __init__(self, open_msg: Open, port: Port, shell: str | None) -> None:
        self.id = open_msg.channel
        self.open_msg = open_msg
        self.port = port
        self.shell_override = shell
        self.pid = 0
        self.done = asyncio.Event()
        self._kill_timer: asyncio.TimerHandle | None = None

    @abstractmethod
    async def start(self) -> int:
        """Start the program; returns its pid. Raises OSError when it cannot."""

    @abstractmethod
    async def run(self) -> None:
        """Move output until the program ends, then report its exit. Started only
        after the hub was told the channel is open, so no output can precede it."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    def resize(self, cols: int, rows: int) -> None:  # noqa: B027 - only PTYs resize
        pass

    @abstractmethod
    def eof(self) -> None: ...

    def close(self, grace: float) -> None:
        """SIGHUP the program's process group, SIGKILL it after `grace` seconds."""
        self._signal(signal.SIGHUP if grace > 0 else signal.SIGKILL)
        if grace > 0 and self._kill_timer is None:
            loop = asyncio.get_running_loop()
            self._kill_timer = loop.call_later(grace, self._signal, signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self.pid and not self.done.is_set():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def _argv(self) -> tuple[list[str], dict[str, str], str]:
        env, home, shell = login_environment(self.open_msg.env)
        shell = self.shell_override or shell
        argv = list(self.open_msg.command) if self.open_msg.command else [shell, "-l"]
        return argv, env, self.open_msg.cwd or home

    async def _pump(self, read: Callable[[int], Awaitable[bytes]], stream: int) -> None:
        """Move output to the hub, reading only as much as the credit allows."""
        while True:
            room = self.port.available(self.id)
            if room <= 0:
                await self.port.wait_credit(self.id)
                continue
            data = await read(min(room, READ_SIZE))
            if not data:
                return
            await self.port.send_data(self.id, data, stream)


class PtyChannel(Channel):
    """An interactive program on a pseudo-terminal."""

    proc: PtyProcess

    def __init__(self, open_msg: Open, port: Port, shell: str | None) -> None:
        super().__init__(open_msg, port, shell)
        self._input: deque[bytes] = deque()
        self._input_size = 0
        self._writing = False
        self._fd = -1

    async def start(self) -> int:
        argv, env, cwd = self._argv()
        msg = self.open_msg
        self.proc = PtyProcess.spawn(argv, cwd=cwd, env=env, dimensions=(msg.rows, msg.cols))
        self.pid = self.proc.pid
        self._fd = self.proc.fd
        os.set_blocking(self._fd, False)
        return self.pid

    async def _read(self, size: int) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.read(self._fd, size)
            except BlockingIOError:
                pass
            except OSError as exc:  # EIO: the slave side is closed, no more output
                if exc.errno == errno.EIO:
                    return b""
                raise
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self._fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(self._fd)

    async def run(self) -> None:
        pump = asyncio.ensure_future(self._pump(self._read, STDOUT))
        status = await wait_exit(self.pid)
        # Output written just before the exit is still in the PTY: drain it, but do
        # not wait forever on a background process that keeps the terminal open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pump), 2.0)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await pump
        await self._finish(exit_code(status))

    async def _finish(self, code: int) -> None:
        self.done.set()
        if self._kill_timer:
            self._kill_timer.cancel()
        loop = asyncio.get_running_loop()
        if self._writing:
            loop.remove_writer(self._fd)
        # Close the master ourselves: PtyProcess.close() sleeps, which must not
        # happen on the event loop.
        with contextlib.suppress(OSError):
            self.proc.fileobj.close()
        self.proc.closed = True
        self.proc.terminated = True
        await self.port.send_exit(self.id, code)

    def write(self, data: bytes) -> None:
        if self.done.is_set():
            return
        if self._input_size + len(data) > MAX_PENDING_INPUT:
            log.warning("channel %d: input dropped, the program is not reading it", self.id)
            return
        self._input.append(data)
        self._input_size += len(data)
        self._flush()

    def _flush(self) -> None:
        while self._input:
            chunk = self._input[0]
            try:
                n = os.write(self._fd, chunk)
            except BlockingIOError:
                n = 0
            except OSError:
                self._input.clear()
                self._input_size = 0
                break
            self._input_size -= n
            if n < len(chunk):
                self._input[0] = chunk[n:]
                if not self._writing:
                    asyncio.get_running_loop().add_writer(self._fd, self._flush)
                    self._writing = True
                return
            self._input.popleft()
        if self._writing:
            asyncio.get_running_loop().remove_writer(self._fd)
            self._writing = False

    def resize(self, cols: int, rows: int) -> None:
        if not self.done.is_set():
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def eof(self) -> None:
        self.write(b"\x04")


class ExecChannel(Channel):
    """A program without a terminal: stdin, stdout and stderr kept apart."""

    proc: asyncio.subprocess.Process

    async def start(self) -> int:
        argv, env, cwd = self._argv()
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        return self.pid

    async def run(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        await asyncio.gather(
            self._pump(self.proc.stdout.read, STDOUT),
            self._pump(self.proc.stderr.read, STDERR),
        )
        code = await self.proc.wait()
        self.done.set()
        if self._kill_timer:
            self._kill_timer.cancel()
        await self.port.send_exit(self.id, 128 - code if code < 0 else code)

    def write(self, data: bytes) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            if stdin.transport.get_write_buffer_size() + len(data) > MAX_PENDING_INPUT:
                log.warning("channel %d: stdin dropped, the program is not reading it", self.id)
                return
            stdin.write(data)

    def eof(self) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def wait_exit(pid: int) -> int:
    """The wait status of child `pid`, without blocking the loop (pidfd, else a thread)."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
        return status
    try:
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(pidfd, _resolve, ready)
        try:
            await ready
        finally:
            loop.remove_reader(pidfd)
        _, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - it has exited
        return status
    finally:
        os.close(pidfd)


def make_channel(open_msg: Open, port: Port, shell: str | None) -> Channel:
    cls: Any = PtyChannel if open_msg.kind == "pty" else ExecChannel
    channel: Channel = cls(open_msg, port, shell)
    return channel
