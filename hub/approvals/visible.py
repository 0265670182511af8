"""Running an approved command in a live terminal session, where its watchers see it.

The command is typed into the session's PTY as one shell line,

    printf '%s%sB\\n' rx1f2e 3d4c; eval 'THE COMMAND'; printf '\\n%s%sE%s\\n' rx1f2e 3d4c "$?"

so the shell echoes the whole line before it runs any of it. The two `printf`s print
a nonce that never appears in the echo (it is split in two there), so everything
between the begin line and the end line is the command's own output, and the end
line carries its exit code. `eval` of the quoted command keeps comments, `&`,
`exit` and multi-line scripts from swallowing the end marker.

The output is read by a hidden client of the session, bounded like exec's capture.
Line ends come back from the PTY as CRLF and are given back as LF; there is no
separate stderr on a terminal. On timeout the command gets a Ctrl-C.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
import time
from typing import Any

from hub.approvals.classifier import command_text
from hub.sessions.broker import Session

TAIL = 512  # bytes kept to find a marker split across reads
CTRL_C = b"\x03"


def _typed(cmd: str | list[str], head: str, tail: str) -> bytes:
    script = shlex.quote(command_text(cmd))
    return (
        f"printf '%s%sB\\n' {head} {tail}; eval {script}; "
        f"printf '\\n%s%sE%s\\n' {head} {tail} \"$?\"\n"
    ).encode()


class Capture:
    """A hidden session client that finds the command's output between the markers."""

    def __init__(self, nonce: bytes, limit: int) -> None:
        self._begin = nonce + b"B\r\n"
        self._end = re.compile(rb"\r?\n" + re.escape(nonce) + rb"E(\d+)\r?\n")
        self.limit = limit
        self.started = False
        self.window = bytearray()  # before the begin marker: just enough to find it
        self.data = bytearray()  # after it, up to `limit` (+ the end marker)
        self.truncated = False
        self.tail = bytearray()
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def send_bytes(self, data: bytes) -> None:
        if self.done.done():
            return
        if not self.started:
            self.window += data
            at = self.window.find(self._begin)
            if at < 0:
                del self.window[: max(len(self.window) - len(self._begin), 0)]
                return
            self.started = True
            data = bytes(self.window[at + len(self._begin) :])
            self.window.clear()
        room = self.limit + TAIL - len(self.data)
        if len(data) > room:
            self.truncated = True
        self.data += data[: max(room, 0)]
        self.tail = (self.tail + data)[-TAIL:]
        found = self._end.search(self.tail)
        if found:
            end = self._end.search(self.data)
            if end is not None:
                del self.data[end.start() :]
            self.done.set_result(int(found.group(1)))

    async def send_text(self, text: str) -> None:
        """Control messages (session, resize, markers) are not output."""

    async def close(self, code: int, reason: str) -> None:
        if not self.done.done():
            self.done.set_exception(EOFError(reason))

    def output(self) -> tuple[str, bool]:
        data = bytes(self.data[: self.limit]).replace(b"\r\n", b"\n")
        return data.decode("utf-8", errors="replace"), self.truncated or len(self.data) > self.limit


async def run_in_session(
    session: Session, cmd: str | list[str], *, limit_s: float, limit: int, user_id: str
) -> dict[str, Any]:
    """Type `cmd` into the session and wait for its exit code; exec's answer shape."""
    started = time.monotonic()
    head, tail = "rx" + secrets.token_hex(3), secrets.token_hex(3)
    capture = Capture((head + tail).encode(), limit)
    client = session.attach(user_id, "viewer", capture, offset=session.ring.end, hidden=True)
    timed_out = False
    try:
        await session.type_in(_typed(cmd, head, tail))
        try:
            code = await asyncio.wait_for(asyncio.shield(capture.done), limit_s)
        except TimeoutError:
            timed_out = True
            code = -1
            await session.type_in(CTRL_C)
        except EOFError:  # the session ended under the command (it ran `exit`, ...)
            code = session.exit_code if session.exit_code is not None else -1
    finally:
        session.detach(client)
    stdout, truncated = capture.output()
    return {
        "exit_code": code,
        "stdout": stdout,
        "stderr": "",
        "stdout_truncated": truncated,
        "stderr_truncated": False,
        "truncated": truncated,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "timed_out": timed_out,
        "session": session.id,
    }
