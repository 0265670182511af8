"""Attach this process's terminal to a remote session, as `ssh` does.

Raw mode while attached; keystrokes go out through the escape filter (`~.` detaches);
output is written as it comes; SIGWINCH becomes a resize; SIGTERM and SIGHUP detach
cleanly. Whatever happens (exit, error, signal), the terminal's settings are restored
exactly as they were, because a shell left in raw mode is unusable.

Output is written to the terminal with blocking writes on purpose: making stdout
non-blocking would change the file description the user's shell shares, and a slow
terminal simply slows how fast we read the socket, which is the backpressure we want.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import termios
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from client.escape import HELP, Action, EscapeFilter
from client.sdk import AsyncClient
from client.terminal import Terminal

READ_SIZE = 64 << 10
MAX_QUEUED = 32  # keystroke reads waiting to be sent before we stop reading stdin


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int | None
    detached: bool = False


def terminal_size(*fds: int) -> tuple[int, int] | None:
    """(cols, rows) of the first of `fds` that is a terminal."""
    for fd in fds:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            if size.columns > 0 and size.lines > 0:
                return size.columns, size.lines
    return None


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[bool]:
    """Raw mode on `fd` if it is a terminal; its settings restored on the way out."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield False
        return
    try:
        tty.setraw(fd, termios.TCSADRAIN)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])  # someone made it non-blocking: wait for room


class _Signals:
    """Loop signal handlers that put back whatever handler was there before."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.saved: dict[int, Any] = {}

    def add(self, sig: int, callback: Callable[[], None]) -> None:
        self.saved[sig] = signal.getsignal(sig)
        self.loop.add_signal_handler(sig, callback)

    def restore(self) -> None:
        for sig, previous in self.saved.items():
            self.loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)


async def attach(
    term: Terminal,
    *,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    escape: bool = True,
) -> Outcome:
    """Relay between the local terminal and `term` until the program exits, the user
    detaches, or the connection fails (the error is raised after the terminal is
    restored)."""
    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[bytes] = asyncio.Queue()
    detached = asyncio.Event()
    escapes = EscapeFilter(escape)
    state = {"reading": False, "eof": False}

    def start_reading() -> None:
        if not state["reading"] and not state["eof"] and not detached.is_set():
            loop.add_reader(stdin_fd, on_stdin)
            state["reading"] = True

    def stop_reading() -> None:
        if state["reading"]:
            loop.remove_reader(stdin_fd)
            state["reading"] = False

    def on_stdin() -> None:
        try:
            data = os.read(stdin_fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            state["eof"] = True  # no more keystrokes; output still comes
            stop_reading()
            return
        fed = escapes.feed(data)
        if fed.data:
            keys.put_nowait(fed.data)
            if keys.qsize() >= MAX_QUEUED:
                stop_reading()
        for action in fed.actions:
            if action is Action.HELP:
                write_all(stdout_fd, b"\r\n" + HELP.encode())
            elif action is Action.DETACH:
                detached.set()
                stop_reading()

    async def send_keys() -> None:
        while True:
            data = await keys.get()
            await term.send(data)
            if keys.qsize() < MAX_QUEUED // 2:
                start_reading()

    async def show_output() -> None:
        async for chunk in term:
            write_all(stdout_fd, chunk)

    resizes: set[asyncio.Task[None]] = set()

    def on_winch() -> None:
        size = terminal_size(stdin_fd, stdout_fd)
        if size is not None:
            task = loop.create_task(term.resize(*size))
            resizes.add(task)
            task.add_done_callback(resizes.discard)

    signals = _Signals(loop)
    tasks: list[asyncio.Task[Any]] = []
    with raw_mode(stdin_fd):
        try:
            signals.add(signal.SIGWINCH, on_winch)
            signals.add(signal.SIGTERM, detached.set)
            signals.add(signal.SIGHUP, detached.set)
            start_reading()
            output = loop.create_task(show_output())
            sender = loop.create_task(send_keys())
            detach = loop.create_task(detached.wait())
            tasks += [output, sender, detach]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if output in done:
                output.result()  # raises the connection's error, if any
                return Outcome(term.exit_code)
            if sender in done:
                # Sending fails when the socket closed: report what the output side saw.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(output), 2.0)
                if output.done():
                    output.result()
                    return Outcome(term.exit_code)
                sender.result()
            return Outcome(None, detached=True)
        finally:
            stop_reading()
            signals.restore()
            for task in [*tasks, *resizes]:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def attach_target(
    client: AsyncClient,
    target: str,
    *,
    command: str | None = None,
    session: str | None = None,
    escape: bool = True,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
) -> tuple[str, Outcome]:
    """Open (or rejoin) a session on a container or agent, by id or name, and attach
    this process's terminal to it; (session id, outcome)."""
    target_id = await client.resolve_target(target)
    size = terminal_size(stdin_fd, stdout_fd)
    cols, rows = size if size else (None, None)
    term = await client.attach(target_id, cols=cols, rows=rows, command=command, session=session)
    async with term:
        outcome = await attach(term, stdin_fd=stdin_fd, stdout_fd=stdout_fd, escape=escape)
    return term.session_id, outcome
