"""ssh-style escape sequences in the keystrokes of an attached terminal, with no I/O.

The escape character `~` counts only at the start of a line (after Enter, or first of
all): `~.` detaches, `~~` sends one `~`, `~?` asks for help; `~` followed by anything
else is sent as typed. Everything not part of an escape passes through unchanged,
byte for byte, so pasted and binary input is not altered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

ESCAPE = ord("~")
NEWLINES = frozenset(b"\r\n")
HELP = (
    "Supported escape sequences (after Enter):\r\n"
    "  ~.  detach (the session goes on for a while; rejoin with --session)\r\n"
    "  ~?  this help\r\n"
    "  ~~  send one ~\r\n"
)


class Action(enum.Enum):
    DETACH = "detach"
    HELP = "help"


@dataclass(frozen=True, slots=True)
class Fed:
    """What one read of keystrokes turned into: bytes to send, then actions, in order."""

    data: bytes
    actions: tuple[Action, ...] = ()

    @property
    def detach(self) -> bool:
        return Action.DETACH in self.actions


class EscapeFilter:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._line_start = True
        self._pending = False

    def feed(self, data: bytes) -> Fed:
        if not self.enabled:
            return Fed(data)
        out = bytearray()
        actions: list[Action] = []
        for byte in data:
            if self._pending:
                self._pending = False
                if byte == ord("."):
                    actions.append(Action.DETACH)
                    return Fed(bytes(out), tuple(actions))  # nothing typed after it counts
                if byte == ord("?"):
                    actions.append(Action.HELP)
                    self._line_start = True
                    continue
                if byte != ESCAPE:
                    out.append(ESCAPE)
                out.append(byte)
            elif self._line_start and byte == ESCAPE:
                self._pending = True
                continue
            else:
                out.append(byte)
            self._line_start = byte in NEWLINES
        return Fed(bytes(out), tuple(actions))
