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

from common import logfmt
from common.ids import new_id
from hub.db.models import utcnow
from hub.sessions.replay import inert
from hub.sessions.source import Source

log = logging.getLogger("rexec.hub.broker")
Role = Literal["owner", "writer", "viewer"]
COALESCE = 64 << 10  # largest message a client writer sends at once


SessionHook = Callable[["Session"], Coroutine[Any, Any, None]]


def in_turn(*hooks: SessionHook) -> SessionHook:
    """One broker callback that runs these in order; each runs even when one before it
    fails (the first failure is raised at the end)."""

    async def run(session: Session) -> None:
        failure: BaseException | None = None
        for hook in hooks:
            try:
                await hook(session)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    return run


class Sink(Protocol):
    """A client's transport (a WebSocket, an SSH channel, ...)."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Scrollback:
    """The most recent `limit` bytes of output, addressed by output offset."""

    def __init__(self, limit: int, start: int = 0) -> None:
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self.start = start  # offset of the first byte kept

    @property
    def end(self) -> int:
        return self.start + self._size

    def reset(self, offset: int) -> None:
        self._chunks.clear()
        self._size = 0
        self.start = offset

    def append(self, data: bytes) -> None:
        if self.limit <= 0:
            self.start += len(data)
            return
        self._chunks.append(data)
        self._size += len(data)
        while self._size > self.limit:
            head = self._chunks.popleft()
            excess = self._size - self.limit
            if len(head) > excess:
                self._chunks.appendleft(head[excess:])
                self._size -= excess
                self.start += excess
            else:
                self._size -= len(head)
                self.start += len(head)

    def since(self, offset: int) -> tuple[int, bytes]:
        """Output from `offset` on (from the oldest kept byte if that is later)."""
        data = b"".join(self._chunks)
        skip = min(max(offset - self.start, 0), len(data))
        return self.start + skip, data[skip:]


@dataclass(eq=False)
class Client:
    """One attached client with its bounded outgoing queue and writer task."""

    id: str
    user_id: str
    role: Role
    sink: Sink
    limit: int
    tags: dict[str, str] = field(default_factory=dict)  # e.g. the share it came through
    queue: deque[bytes | str] = field(default_factory=deque)
    queued: int = 0
    flushed: int = 0  # session output offset this client has written out
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    closing: tuple[int, str] | None = None
    skipped: int = 0
    hidden: bool = False  # the recorder: not a participant

    @property
    def paces(self) -> bool:
        """Owners and writers pace the program; viewers are skipped forward instead."""
        return self.role != "viewer"


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
        session_id: str | None = None,
        awaiting_offset: bool = False,
        started_at: datetime | None = None,
        size: tuple[int, int] = (80, 24),
    ) -> None:
        self.id = session_id or new_id("ses")
        self.broker = broker
        self.user_id = user_id
        self.target = target
        self.source = source
        self.window = window
        self.client_queue = client_queue
        self.grace = grace
        self.started_at: datetime = started_at or utcnow()
        self.cols, self.rows = size
        self.ended_at: datetime | None = None
        self.exit_code: int | None = None
        self.clients: dict[str, Client] = {}
        self.ring = Scrollback(scrollback)
        self.produced = 0
        self.credited = 0
        self._credit_threshold = max(1, window // 4)
        self._grace_timer: asyncio.TimerHandle | None = None
        self.ended = asyncio.Event()
        # A session taken up again after a hub restart: where its output resumes is
        # decided by the first client (the offset it already has).
        self.awaiting_offset = awaiting_offset
        self.deferred: list[tuple[str, Role, Sink]] = []  # hidden clients waiting for it
        # Until its first client arrives a session holds the program at one window,
        # so nothing scrolls out of the ring before anyone has seen it.
        self.seen_client = False
        source.events = self
        source.begin()

    @property
    def live(self) -> bool:
        return self.exit_code is None

    # -- source events ------------------------------------------------------

    def on_output(self, data: bytes) -> None:
        self.produced += len(data)
        self.broker.bytes_out += len(data)
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

    def attach(
        self,
        user_id: str,
        role: Role,
        sink: Sink,
        *,
        offset: int | None = None,
        tags: dict[str, str] | None = None,
        hidden: bool = False,
    ) -> Client:
        """Attach a client: it gets the session message, then output from `offset` (the
        bytes it already has; default: the recent screen), then live output. The
        caller's log lines from here on name the session (its writer task's too)."""
        logfmt.bind(session_id=self.id)
        client = Client(
            new_id("ses").replace("ses_", "cli_"),
            user_id,
            role,
            sink,
            self.client_queue,
            tags or {},
            hidden=hidden,
        )
        if self._grace_timer:
            self._grace_timer.cancel()
            self._grace_timer = None
        if self.awaiting_offset:
            self.awaiting_offset = False
            start = self.source.resume_from(offset)
            self.produced = self.credited = start
            self.ring.reset(start)
            for user, hidden_role, hidden_sink in self.deferred:
                self.attach(user, hidden_role, hidden_sink, offset=start, hidden=True)
            self.deferred.clear()
        start, replay = self.ring.since(self.ring.start if offset is None else offset)
        if self.seen_client:  # shown before, its queries answered then: not again
            replay = inert(replay)
        client.flushed = start  # the replay is not owed to the source
        self._push(
            client, json.dumps({"type": "session", "id": self.id, "role": role, "offset": start})
        )
        if not hidden:  # the size, before the screen drawn at it (the recorder has it)
            self._push(client, self._size_message())
        if replay:
            self._push(client, replay)
        if self.exit_code is not None:  # it ended before this client got here
            self._push(client, json.dumps({"type": "exit", "code": self.exit_code}))
            client.closing = (1000, "session ended")
        self.clients[client.id] = client
        if not hidden:
            self.seen_client = True
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
        self.unattended()

    def unattended(self) -> None:
        """With nobody attached, the session ends after the grace period (from now)."""
        if not any(not c.hidden for c in self.clients.values()) and self.live:
            if self._grace_timer:
                self._grace_timer.cancel()
            loop = asyncio.get_running_loop()
            self._grace_timer = loop.call_later(self.grace, self.close, 0.0)

    async def input(self, client: Client, data: bytes) -> None:
        if client.role == "viewer" or not self.live:
            return
        self.broker.bytes_in += len(data)
        await self.source.write(data)

    def resize(self, client: Client, cols: int, rows: int) -> None:
        """The PTY takes the latest size from the owner or a writer, and every client is
        told it: one size for everyone, which each shows as it is (sessions.md)."""
        if client.role == "viewer" or not self.live:
            return
        self.source.resize(cols, rows)
        if (cols, rows) == (self.cols, self.rows):
            return
        self.cols, self.rows = cols, rows
        text = self._size_message()
        for other in self.clients.values():
            self._push(other, text)

    def _size_message(self) -> str:
        return json.dumps({"type": "resize", "cols": self.cols, "rows": self.rows})

    async def type_in(self, data: bytes) -> None:
        """Keystrokes from the hub itself (an approved AI command typed where people see it)."""
        if self.live:
            await self.source.write(data)

    def mark(self, label: str) -> None:
        """A marker in the recording (asciicast `m` event), in order with the output."""
        text = json.dumps({"type": "marker", "label": label})
        for client in self.clients.values():
            if client.hidden:
                self._push(client, text)

    def close(self, grace: float = 3.0) -> None:
        """End the program; the session ends when the source reports the exit."""
        if self.live:
            self.source.close(grace)

    def tell(self, client: Client, message: dict[str, Any]) -> None:
        """A control message for one client, in order with what it already has queued."""
        self._push(client, json.dumps(message))

    def notify(self, message: dict[str, Any]) -> None:
        """Send a control message (for example why the session is about to end)."""
        text = json.dumps(message)
        for client in list(self.clients.values()):
            self._push(client, text)

    def kick(
        self,
        predicate: Callable[[Client], bool],
        code: int,
        reason: str,
        error: str = "access_ended",
    ) -> None:
        """Close the clients whose access ended (a share revoked, a sign-out, a pause)."""
        for client in list(self.clients.values()):
            if predicate(client):
                self._push(client, json.dumps({"type": "error", "code": error, "message": reason}))
                client.closing = (code, reason)
                client.wakeup.set()

    def participants(self) -> list[dict[str, Any]]:
        return [
            {"id": c.id, "user": c.user_id, "role": c.role}
            for c in self.clients.values()
            if not c.hidden
        ]

    # -- internals ------------------------------------------------------------

    def _push(self, client: Client, item: bytes | str) -> None:
        if client.closing:
            return
        size = len(item)
        if client.queued + size > client.limit and not client.paces and isinstance(item, bytes):
            # A viewer that cannot keep up is skipped forward, never allowed to slow the
            # program or grow the hub: what it has not taken yet is dropped.
            dropped = sum(len(i) for i in client.queue if isinstance(i, bytes))
            kept = [i for i in client.queue if isinstance(i, str)]
            client.queue.clear()
            client.queue.extend(kept)
            client.queued = sum(len(i) for i in kept)
            client.skipped += dropped + size
            notice = json.dumps({"type": "skipped", "bytes": dropped + size})
            client.queue.append(notice)
            client.queued += len(notice)
            client.wakeup.set()
            return
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
            if not client.hidden:
                self._push(client, msg)

    def _maybe_credit(self) -> None:
        if not self.live or not self.seen_client:
            return
        low = min((c.flushed for c in self.clients.values() if c.paces), default=self.produced)
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
        self.on_create: Callable[[Session], None] | None = None  # e.g. start recording
        self._tasks: set[asyncio.Task[None]] = set()
        self.bytes_in = 0  # keystrokes relayed to programs (metrics)
        self.bytes_out = 0  # program output relayed

    def create(
        self,
        *,
        user_id: str,
        target: str,
        source: Source,
        session_id: str | None = None,
        awaiting_offset: bool = False,
        started_at: datetime | None = None,
        size: tuple[int, int] = (80, 24),
    ) -> Session:
        session = Session(
            self,
            user_id=user_id,
            target=target,
            source=source,
            window=self.window,
            scrollback=self.scrollback,
            client_queue=self.client_queue,
            grace=self.grace,
            session_id=session_id,
            awaiting_offset=awaiting_offset,
            started_at=started_at,
            size=size,
        )
        self.sessions[session.id] = session
        if self.on_create is not None:
            self.on_create(session)
        return session

    async def start(
        self, *, user_id: str, target: str, source: Source, size: tuple[int, int]
    ) -> Session:
        """A new session, recorded in the store before any output can flow (a hub
        killed a moment later must still find it to take it up again)."""
        session = self.create(user_id=user_id, target=target, source=source, size=size)
        logfmt.bind(session_id=session.id)
        log.info("session started on %s", target)
        if self._on_start is not None:
            await self._on_start(session)
        return session

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _record_end(self, session: Session) -> None:
        if self._on_end is not None:
            await self._on_end(session)

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def session_ended(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self._spawn(self._record_end(session))

    def abandon(self, session_id: str) -> Session | None:
        """Another hub took this session over (its agent moved there): forget it here
        without ending it, and send its clients to reconnect (1012), which finds it on
        the other hub. Its record in the database is the other hub's now."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return None
        session.exit_code = -1  # no longer live here; never reported as an end
        if session._grace_timer:
            session._grace_timer.cancel()
        for client in list(session.clients.values()):
            client.closing = (1012, "The session moved to another hub; reconnect.")
            client.wakeup.set()
        return session

    def kick_all(
        self,
        predicate: Callable[[Client], bool],
        code: int,
        reason: str,
        error: str = "access_ended",
    ) -> None:
        for session in list(self.sessions.values()):
            session.kick(predicate, code, reason, error)

    def tag_values(self, tag: str) -> set[str]:
        """The values of `tag` among the clients attached here (the shares in use)."""
        return {
            c.tags[tag]
            for session in self.sessions.values()
            for c in session.clients.values()
            if tag in c.tags
        }

    def for_target(self, target: str) -> list[Session]:
        return [s for s in self.sessions.values() if s.target == target]

    async def restarting(self, message: str, patience: float = 5.0) -> None:
        """A graceful stop: every client is told the hub is restarting and closed with
        1012 (service restart) so it reconnects, through the load balancer, to another
        hub; the sessions themselves go on (their agents keep them for resume). Waits,
        up to `patience` seconds, for the clients to get the message."""
        notice = json.dumps({"type": "error", "code": "hub_restarting", "message": message})
        writers = []
        for session in list(self.sessions.values()):
            for client in list(session.clients.values()):
                if client.hidden or client.closing:
                    continue
                session._push(client, notice)
                client.closing = (1012, "hub restarting")
                client.wakeup.set()
                if client.task is not None:
                    writers.append(client.task)
        if writers:
            await asyncio.wait(writers, timeout=patience)

    async def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            for client in list(session.clients.values()):
                client.closing = (1001, "hub shutting down")
                client.wakeup.set()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
