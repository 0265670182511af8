"""Programs the agent runs for the hub: a PTY (interactive) or a plain exec.

Output is read only while the channel has credit, so a hub or client that stops
reading makes the program block on its PTY/pipe, as with SSH windows. Input goes the
other way the same way (protocol 2): credit goes back to the hub only as the program
takes its input, so a program that stops reading holds the sender back. Nothing here
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
from typing import Protocol

from ptyprocess import PtyProcess

from common.protocol.messages import INPUT_WINDOW, STDERR, STDOUT, Open

log = logging.getLogger("rexec.agent.channels")
READ_SIZE = 64 << 10
MAX_PENDING_INPUT = 1 << 20  # input waiting for the program (more only from a protocol-1 hub)
CREDIT_BATCH = INPUT_WINDOW // 4  # input taken before credit goes back: fewer frames


class Port(Protocol):
    """What a channel needs from the agent: the current link's credit, and sending.
    Sending answers False while there is no link; output then waits in the channel."""

    def available(self, channel: int) -> int: ...

    async def wait(self, channel: int) -> None: ...

    async def send_data(self, channel: int, data: bytes, stream: int, seq: int) -> bool: ...

    async def send_exit(self, channel: int, code: int) -> bool: ...

    async def send_credit(self, channel: int, size: int) -> bool: ...


class ReplayRing:
    """The last `limit` bytes of a channel's output, addressed by output offset, so a
    hub that lost some (a dropped link, a restart) can ask for them again."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.start = 0  # offset of buf[0]

    @property
    def end(self) -> int:
        return self.start + len(self.buf)

    def append(self, data: bytes) -> None:
        self.buf += data
        excess = len(self.buf) - self.limit
        if excess > 0:
            del self.buf[:excess]  # cheap: bytearray drops from the front in place
            self.start += excess

    def read(self, offset: int, size: int) -> bytes:
        i = offset - self.start
        return bytes(self.buf[i : i + size])


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
    resumable = False

    def __init__(self, open_msg: Open, port: Port, shell: str | None) -> None:
        self.id = open_msg.channel
        self.open_msg = open_msg
        self.port = port
        self.shell_override = shell
        self.pid = 0
        self.done = asyncio.Event()
        self._kill_timer: asyncio.TimerHandle | None = None
        self._taken = 0  # input the program took, not yet credited back
        self._crediting: asyncio.Task[None] | None = None

    def _took(self, size: int) -> None:
        """The program took (or we dropped) `size` bytes of input: credit it back."""
        self._taken += size
        if self._taken >= CREDIT_BATCH and self._crediting is None:
            self._crediting = asyncio.get_running_loop().create_task(self._credit())

    async def _credit(self) -> None:
        try:
            while self._taken >= CREDIT_BATCH:
                size, self._taken = self._taken, 0
                if not await self.port.send_credit(self.id, size):
                    break  # no link, or protocol 1: a new link starts with a full window
        finally:
            self._crediting = None

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


class PtyChannel(Channel):
    """An interactive program on a pseudo-terminal. Its output goes through a replay
    ring, so it survives a dropped link or a hub restart (see Agent in connection.py)."""

    proc: PtyProcess
    resumable = True

    def __init__(
        self, open_msg: Open, port: Port, shell: str | None, replay: int = 1 << 20
    ) -> None:
        super().__init__(open_msg, port, shell)
        self._input: deque[bytes] = deque()
        self._input_size = 0
        self._writing = False
        self._fd = -1
        self.ring = ReplayRing(replay)
        self.sent = 0  # offset up to which the current link has the output
        self.exit_status: int | None = None
        self.abandoned = False
        self.wake = asyncio.Event()
        self._ready: asyncio.Future[None] | None = None

    async def start(self) -> int:
        argv, env, cwd = self._argv()
        msg = self.open_msg
        self.proc = PtyProcess.spawn(argv, cwd=cwd, env=env, dimensions=(msg.rows, msg.cols))
        self.pid = self.proc.pid
        self._fd = self.proc.fd
        os.set_blocking(self._fd, False)
        return self.pid

    def resume(self, seq: int) -> None:
        """A new link takes the output up again from offset `seq` (and its input with a
        full window: credit owed to the old link is dropped)."""
        self.sent = seq
        self._taken = 0
        self.wake.set()

    def abandon(self) -> None:
        """Nobody will take this channel up again: end the program and stop."""
        self.abandoned = True
        self.close(1.0)
        self.wake.set()
        if self._ready is not None:
            _resolve(self._ready)

    async def _read(self, size: int) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.read(self._fd, size)
            except BlockingIOError:
                if self.exit_status is not None:
                    return b""  # exited and drained (a background job may hold the tty)
            except OSError as exc:  # EIO: the slave side is closed, no more output
                if exc.errno == errno.EIO:
                    return b""
                raise
            ready: asyncio.Future[None] = loop.create_future()
            self._ready = ready  # the exit watcher resolves it too
            loop.add_reader(self._fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(self._fd)
                self._ready = None

    async def run(self) -> None:
        watcher = asyncio.ensure_future(self._watch_exit())
        eof = False
        while not self.abandoned:
            room = self.port.available(self.id)
            pending = self.ring.end - self.sent
            if pending > 0 and room > 0:
                seq = self.sent
                chunk = self.ring.read(seq, min(pending, room, READ_SIZE))
                await self._send(chunk, seq)
                continue
            if eof and pending == 0:
                break
            if eof or room <= 0:
                if self.exit_status is not None and not eof:
                    # The program is gone: take what is left in the PTY without credit
                    # (at most the kernel's buffer), so nothing waits on a reader.
                    data = await self._read(READ_SIZE)
                    if data:
                        self.ring.append(data)
                    else:
                        eof = True
                    continue
                self.wake.clear()
                await self.wake.wait()
                continue
            data = await self._read(min(room, READ_SIZE))
            if not data:
                eof = True
                continue
            self.ring.append(data)
            await self._send(data, self.ring.end - len(data))
        await watcher
        while not self.abandoned and not await self.port.send_exit(self.id, self.exit_status or 0):
            self.wake.clear()
            await self.wake.wait()
        self._release()

    async def _send(self, data: bytes, seq: int) -> None:
        """Send output that starts at offset `seq`. A Resume may move `sent` while we
        wait (the link changed under us): then the frame does not count."""
        if seq != self.sent:
            return  # not what the link expects next: the replay branch sends it
        if await self.port.send_data(self.id, data, STDOUT, seq):
            if self.sent == seq:
                self.sent = seq + len(data)
        else:  # no link to send on: wait for a new one (or for credit) to change that
            await self.wake.wait()
            self.wake.clear()

    async def _watch_exit(self) -> None:
        status = await wait_exit(self.pid)
        self.exit_status = exit_code(status)
        self.done.set()
        if self._kill_timer:
            self._kill_timer.cancel()
        self.wake.set()
        if self._ready is not None:
            _resolve(self._ready)

    def _release(self) -> None:
        loop = asyncio.get_running_loop()
        if self._writing:
            loop.remove_writer(self._fd)
            self._writing = False
        # Close the master ourselves: PtyProcess.close() sleeps, which must not
        # happen on the event loop.
        with contextlib.suppress(OSError):
            self.proc.fileobj.close()
        self.proc.closed = True
        self.proc.terminated = True

    def write(self, data: bytes) -> None:
        if self.done.is_set():
            return
        if self._input_size + len(data) > MAX_PENDING_INPUT:
            log.warning("channel %d: input dropped, the program is not reading it", self.id)
            self._took(len(data))
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
                self._took(self._input_size)
                self._input.clear()
                self._input_size = 0
                break
            self._input_size -= n
            self._took(n)
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
    sent = 0
    _unflushed = 0  # input written to stdin's transport, not yet drained to the pipe
    _draining: asyncio.Task[None] | None = None

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

    async def _pump(self, read: Callable[[int], Awaitable[bytes]], stream: int) -> None:
        """Move output to the hub, reading only as much as the credit allows. An exec
        does not outlive its link: what cannot be sent is dropped."""
        while True:
            room = self.port.available(self.id)
            if room <= 0:
                await self.port.wait(self.id)
                continue
            data = await read(min(room, READ_SIZE))
            if not data:
                return
            await self.port.send_data(self.id, data, stream, self.sent)
            self.sent += len(data)

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
        if stdin is None or stdin.is_closing():
            self._took(len(data))  # the program closed its stdin: the input is gone
            return
        if stdin.transport.get_write_buffer_size() + len(data) > MAX_PENDING_INPUT:
            log.warning("channel %d: stdin dropped, the program is not reading it", self.id)
            self._took(len(data))
            return
        stdin.write(data)
        self._unflushed += len(data)
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Credit input as the pipe takes it (the program reads it)."""
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            while self._unflushed:
                size = self._unflushed
                with contextlib.suppress(ConnectionError, OSError):
                    await stdin.drain()
                self._unflushed -= size
                self._took(size)
        finally:
            self._draining = None

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


def make_channel(open_msg: Open, port: Port, shell: str | None, replay: int) -> Channel:
    if open_msg.kind == "pty":
        return PtyChannel(open_msg, port, shell, replay)
    return ExecChannel(open_msg, port, shell)
