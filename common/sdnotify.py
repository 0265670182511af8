"""systemd's notify protocol: readiness, watchdog and stopping, without libsystemd.

A datagram to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an
abstract socket). Without that variable (not started by systemd with `Type=notify`)
every call is a no-op, so callers never need to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends state lines to systemd; all methods are safe to call without systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path.startswith("@"):
            self.address = "\0" + path[1:]
        elif path.startswith("/"):
            self.address = path
        self.watchdog_interval = _watchdog_interval(env)
        self._ready = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send `KEY=VALUE` lines in one datagram; False when there is nowhere to send."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(lines).encode())
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> None:
        """READY=1, once; later calls only update the status line."""
        lines = [] if self._ready else ["READY=1"]
        self._ready = True
        if status:
            lines.append(f"STATUS={status}")
        if lines:
            self.send(*lines)

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping the watchdog at half its period for as long as the event loop runs."""
        if self.address is None or self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of `$WATCHDOG_USEC` in seconds, when the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    with contextlib.suppress(ValueError):
        value = int(usec)
        if value > 0:
            return value / 2 / 1_000_000
    return None
