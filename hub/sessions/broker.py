"""Sessions and their clients, independent of any transport.

A session owns one Source and fans its output out to every attached client through
a bounded per-client queue. Output is credited back to the source only once every
client has flushed it, so the slowest client paces the program (up to the session
window); a client whose queue passes its bound is dropped rather than allowed to
grow the hub's memory. Recent output is kept in a bounded scrollback ring so a
client that joins or comes back sees the recent screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from common.ids import new_id
from hub.db.models import utcnow
from hub.sessions.source import Source

log = logging.getLogger("rexec.hub.broker")
Role = Literal["owner", "writer", "viewer"]
COALESCE = 64 << 10  # largest message a client writer sends at once


class Sink(Protocol):
    """A client's transport (a WebSocket, an SSH channel, ...)."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Scrollback:
    """The most recent `limit` bytes of output."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0

    def append(self, data: bytes) -> None:
        if self.limit <= 0:
            return
        self._chunks.append(data)
        self._size += len(data)
        while self._size > self.limit:
            head = self._chunks.popleft()
            excess = self._size - self.limit
            if len(head) > excess:
                self._chunks.appendleft(head[excess:])
                self._size -= excess
            else:
                self._size -= len(head)

    def snapshot(self) -> bytes:
        return b"".join(self._chunks)


@dataclass(eq=False)
class Client:
    """One attached client with its bounded outgoing queue and writer task."""

    id: str
    user_id: str
    role: Role
    sink: Sink
    limit: int
    queue: deque[bytes | str] = field(default_factory=deque)
    queued: int = 0
    flushed: int = 0  # session output offset this client has written out
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    closing: tuple[int, str] | None = None


class Session:
    def __init__(
        self,
        broker: Broker,
        *,
        user_id: str,
        target: str,
        source: Source,
        window: int,
        scrollback: int,
        client_queue: int,
        grace: float,
    ) -> None:
        self.id = new_id("ses")
        self.broker = broker
        self.user_id = user_id
        self.target = target
        self.source = source
        self.window = window
        self.client_queue = client_queue
        self.grace = grace
        self.started_at: datetime = utcnow()
        self.ended_at: datetime | None = None
        self.exit_code: int | None = None
        self.clients: dict[str, Client] = {}
        self.ring = Scrollback(scrollback)
        self.produced = 0
        self.credited = 0
        self._credit_threshold = max(1, window // 4)
        self._grace_timer: asyncio.TimerHandle | None = None
        self.ended = asyncio.Event()
        source.events = self
        source.begin()

    @property
    def live(self) -> bool:
        return self.exit_code is None

    # -- source events ------------------------------------------------------

    def on_output(self, data: bytes) -> None:
        self.produced += len(data)
        self.ring.append(data)
        for client in list(self.clients.values()):
            self._push(client, data)
        self._maybe_credit()

    def on_exit(self, code: int) -> None:
        if self.exit_code is not None:
            return
        self.exit_code = code
        self.ended_at = utcnow()
        if self._grace_timer:
            self._grace_timer.cancel()
        for client in list(self.clients.values()):
            self._push(client, json.dumps({"type": "exit", "code": code}))
            client.closing = (1000, "session ended")
            client.wakeup.set()
        self.ended.set()
        self.broker.session_ended(self)

    # -- clients ------------------------------------------------------------

    def attach(self, user_id: str, role: Role, sink: Sink) -> Client:
        """Attach a client: it gets the session message, then the recent screen."""
        client = Client(
            new_id("ses").replace("ses_", "cli_"), user_id, role, sink, self.client_queue
        )
        if self._grace_timer:
            self._grace_timer.cancel()
            self._grace_timer = None
        client.flushed = self.produced
        self._push(client, json.dumps({"type": "session", "id": self.id, "role": role}))
        screen = self.ring.snapshot()
        if screen:
            client.flushed -= len(screen)  # the replay is not owed to the source
            self._push(client, screen)
        self.clients[client.id] = client
        client.task = asyncio.get_running_loop().create_task(self._writer(client))
        self._broadcast_participants()
        return client

    def detach(self, client: Client) -> None:
        if self.clients.pop(client.id, None) is None:
            return
        if client.task and client.task is not asyncio.current_task():
            client.task.cancel()
        self._maybe_credit()
        self._broadcast_participants()
        if not self.clients and self.live:
            loop = asyncio.get_running_loop()
            self._grace_timer = loop.call_later(self.grace, self.close, 0.0)

    async def input(self, client: Client, data: bytes) -> None:
        if client.role == "viewer" or not self.live:
            return
        await self.source.write(data)

    def resize(self, client: Client, cols: int, rows: int) -> None:
        if client.role != "viewer" and self.live:
            self.source.resize(cols, rows)

    def close(self, grace: float = 3.0) -> None:
        """End the program; the session ends when the source reports the exit."""
        if self.live:
            self.source.close(grace)

    def notify(self, message: dict[str, Any]) -> None:
        """Send a control message (for example why the session is about to end)."""
        text = json.dumps(message)
        for client in list(self.clients.values()):
            self._push(client, text)

    def participants(self) -> list[dict[str, Any]]:
        return [{"id": c.id, "user": c.user_id, "role": c.role} for c in self.clients.values()]

    # -- internals ------------------------------------------------------------

    def _push(self, client: Client, item: bytes | str) -> None:
        if client.closing:
            return
        size = len(item)
        if client.queued + size > client.limit:
            log.info("dropping client %s of %s: it fell too far behind", client.id, self.id)
            client.closing = (4008, "too slow: output could not be delivered")
            client.queue.clear()
            client.queued = 0
            client.wakeup.set()
            return
        client.queue.append(item)
        client.queued += size
        client.wakeup.set()

    def _broadcast_participants(self) -> None:
        msg = json.dumps({"type": "participants", "participants": self.participants()})
        for client in self.clients.values():
            self._push(client, msg)

    def _maybe_credit(self) -> None:
        if not self.live:
            return
        low = min((c.flushed for c in self.clients.values()), default=self.produced)
        low = max(low, self.credited)
        if low - self.credited >= self._credit_threshold or (
            low == self.produced and low > self.credited
        ):
            self.source.credit(low - self.credited)
            self.credited = low

    async def _writer(self, client: Client) -> None:
        try:
            while True:
                while not client.queue:
                    if client.closing:
                        await client.sink.close(*client.closing)
                        return
                    client.wakeup.clear()
                    await client.wakeup.wait()
                item = client.queue.popleft()
                if isinstance(item, str):
                    client.queued -= len(item)
                    await client.sink.send_text(item)
                    continue
                # Coalesce consecutive output into one message.
                parts = [item]
                total = len(item)
                while client.queue and isinstance(client.queue[0], bytes) and total < COALESCE:
                    nxt = client.queue.popleft()
                    assert isinstance(nxt, bytes)
                    parts.append(nxt)
                    total += len(nxt)
                client.queued -= total
                await client.sink.send_bytes(b"".join(parts) if len(parts) > 1 else item)
                client.flushed += total
                self._maybe_credit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transport failed: this client is gone
            log.debug("client %s writer ended: %r", client.id, exc)
        finally:
            self.detach(client)


Starter = Callable[[], Awaitable[Source]]


class Broker:
    """All live sessions of this hub process."""

    def __init__(
        self,
        *,
        window: int,
        scrollback: int,
        client_queue: int,
        grace: float,
        on_start: Callable[[Session], Coroutine[Any, Any, None]] | None = None,
        on_end: Callable[[Session], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.window = window
        self.scrollback = scrollback
        self.client_queue = client_queue
        self.grace = grace
        self.sessions: dict[str, Session] = {}
        self._on_start = on_start
        self._on_end = on_end
        self._tasks: set[asyncio.Task[None]] = set()
        self._started: dict[str, asyncio.Task[None]] = {}

    def create(self, *, user_id: str, target: str, source: Source) -> Session:
        session = Session(
            self,
            user_id=user_id,
            target=target,
            source=source,
            window=self.window,
            scrollback=self.scrollback,
            client_queue=self.client_queue,
            grace=self.grace,
        )
        self.sessions[session.id] = session
        if self._on_start is not None:
            self._started[session.id] = self._spawn(self._on_start(session))
        return session

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _record_end(self, session: Session) -> None:
        started = self._started.pop(session.id, None)
        if started is not None:  # the end must not overtake the start in the store
            with contextlib.suppress(Exception):
                await started
        if self._on_end is not None:
            await self._on_end(session)

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def session_ended(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self._spawn(self._record_end(session))

    def for_target(self, target: str) -> list[Session]:
        return [s for s in self.sessions.values() if s.target == target]

    async def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            for client in list(session.clients.values()):
                client.closing = (1001, "hub shutting down")
                client.wakeup.set()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
