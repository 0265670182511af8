"""A session's current screen as text: its recent output replayed into a terminal
emulator (pyte) of the session's size."""

from __future__ import annotations

from dataclasses import dataclass

import pyte

from hub.sessions.broker import Session


@dataclass(frozen=True, slots=True)
class Screen:
    text: str
    cursor: tuple[int, int]  # column, row, from 0


def render(output: bytes, cols: int, rows: int) -> Screen:
    """What a terminal of `cols` x `rows` shows after `output`. The scrollback ring may
    start in the middle of an escape sequence; the emulator skips what it cannot parse."""
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    stream.feed(output)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return Screen("\n".join(lines), (screen.cursor.x, screen.cursor.y))


def current_screen(session: Session) -> Screen:
    _, output = session.ring.since(session.ring.start)
    return render(output, session.cols, session.rows)
