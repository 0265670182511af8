"""One agent's live link on the hub, and the channels (terminal sources) on it.

The WebSocket handler feeds frames in; this module keeps the protocol state (a
`common.protocol.Link`), dispatches typed events to channels, and writes frames
out through one writer task. Keystrokes wait for room (bounded bytes in flight);
control frames are few and small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from common.errors import Conflict, ProtocolError, RexecError, Unavailable
from common.protocol import (
    PROTOCOL_VERSIONS,
    Close,
    Credit,
    Data,
    Eof,
    Error,
    Exit,
    Hello,
    Link,
    Message,
    Metrics,
    Open,
    Opened,
    Ping,
    Pong,
    Resize,
    Resume,
    Welcome,
)
from common.protocol.messages import STDERR
from hub.sessions.source import Source, SourceEvents

log = logging.getLogger("rexec.hub.agents")
INPUT_IN_FLIGHT = 256 << 10  # keystroke bytes queued towards one agent
OPEN_TIMEOUT = 15.0
HELLO_TIMEOUT = 10.0
# Control frames (Pong, Credit, Resize, ...) queued towards one agent. A link that lets
# this many pile up is not reading (a Ping flood never read): it is closed, not buffered.
MAX_CONTROL_QUEUED = 1024
# Channels an agent may claim to hold in its Hello: each claim costs the hub a lookup.
MAX_HELD_CHANNELS = 256
ABUSE_CLOSE = 1008  # WebSocket "policy violation": the agent broke a limit (protocol.md)


class LinkAbuse(RexecError):
    """The agent broke one of the link's limits; the link closes with ABUSE_CLOSE."""

    status = 429
    default_code = "agent_abuse"

    @property
    def close_code(self) -> int:
        return ABUSE_CLOSE


class Transport:
    """What the connection needs from its WebSocket."""

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        close: Callable[[int, str], Awaitable[Any]],
    ) -> None:
        self.send = send
        self.close = close


class AgentChannel(Source):
    """A PTY (or exec) channel on an agent: the agent-side terminal source.

    A PTY channel outlives its link: while the agent is away it is detached (input is
    dropped, output simply stops), and a new link takes it up with Resume from the
    offset this side has received, so nothing is lost or doubled."""

    def __init__(
        self,
        conn: AgentConnection | None,
        channel: int,
        kind: str = "pty",
        *,
        agent_id: str = "",
    ) -> None:
        self.conn = conn
        self.agent_id = agent_id or (conn.agent_id if conn is not None else "")
        self.channel = channel
        self.kind = kind
        self.window = conn.window if conn is not None else 0
        self.received = 0  # output offset of the next byte from the agent
        self.credited = 0  # offset up to which credit was returned
        self.held_start = 0  # oldest offset the agent can replay (after a hub restart)
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.exit_code: int | None = None
        self.on_stderr: Callable[[bytes], None] | None = None
        # Output that arrives before anyone listens (bounded by the window, since
        # nothing is credited until it is delivered).
        self._early: list[Data] = []
        self._listener: SourceEvents | None = None
        # Input waits for the agent's input credit (protocol 2): a program that does not
        # read its stdin holds the sender back instead of losing what it was sent.
        self._input_lock = asyncio.Lock()
        self._input_room = asyncio.Event()

    @property
    def events(self) -> SourceEvents | None:
        return self._listener

    @events.setter
    def events(self, listener: SourceEvents | None) -> None:
        self._listener = listener
        early, self._early = self._early, []
        for msg in early:
            self._data(msg)
        if listener is not None and self.exit_code is not None:
            listener.on_exit(self.exit_code)

    async def write(self, data: bytes) -> None:
        async with self._input_lock:  # one writer at a time spends the window
            while data and self.exit_code is None and (conn := self.conn) is not None:
                room = conn.link.input_available(self.channel)
                if room is None:  # protocol 1: input is not paced
                    await conn.send_input(Data(self.channel, data))
                    return
                if room <= 0:
                    self._input_room.clear()
                    await self._input_room.wait()
                    continue
                chunk, data = data[:room], data[room:]
                await conn.send_input(Data(self.channel, chunk))

    def _input_credited(self) -> None:
        self._input_room.set()

    def resize(self, cols: int, rows: int) -> None:
        if self.conn is not None:
            self.conn.send_control(Resize(self.channel, cols, rows))

    def credit(self, size: int) -> None:
        self.credited += size
        if self.exit_code is None and self.conn is not None:
            self.conn.send_control(Credit(self.channel, size))

    def eof(self) -> None:
        if self.conn is not None:
            self.conn.send_control(Eof(self.channel))

    def close(self, grace: float = 3.0) -> None:
        if self.exit_code is None and self.conn is not None:
            self.conn.send_control(Close(self.channel, grace))
        elif self.exit_code is None:
            self._exit(129)  # detached: nothing to signal; SIGHUP is what it would get

    # -- links coming and going ---------------------------------------------------------

    def detach(self) -> None:
        self.conn = None
        self._input_room.set()

    def rebind(self, conn: AgentConnection) -> None:
        """A new link takes the channel up where this side stopped receiving."""
        self.conn = conn
        self._input_room.set()
        conn.channels[self.channel] = self
        in_flight = self.received - self.credited
        conn.send_control(Resume(self.channel, self.received, max(self.window - in_flight, 0)))

    def resume_from(self, offset: int | None) -> int:
        assert self.conn is not None
        start = max(offset if offset is not None else self.held_start, self.held_start)
        log.info("agent %s: resuming channel %d at offset %d", self.agent_id, self.channel, start)
        self.received = self.credited = start
        self.conn.send_control(Resume(self.channel, start, self.window))
        return start

    # -- from the link --------------------------------------------------------

    def _received(self, msg: Data) -> None:
        self.received += len(msg.payload)
        self._data(msg)

    def _data(self, msg: Data) -> None:
        if self._listener is None:
            self._early.append(msg)
        elif msg.stream == STDERR and self.on_stderr is not None:
            self.on_stderr(msg.payload)
        else:
            self._listener.on_output(msg.payload)

    def _exit(self, code: int) -> None:
        self.exit_code = code
        self._input_room.set()
        if not self.opened.done():
            self.opened.set_result(-1)
        if self._listener is not None:
            self._listener.on_exit(code)

    def _failed(self, err: Error) -> None:
        if not self.opened.done():
            self.opened.set_exception(Conflict(err.message, code=err.code))
        else:
            self._exit(255)


@dataclass
class _Pending:
    frame: bytes
    input_bytes: int
    control: bool = False  # counted in control_queued (keystrokes are bounded in bytes)


class AgentConnection:
    """The hub's end of one agent link."""

    def __init__(self, agent_id: str, transport: Transport, window: int) -> None:
        self.agent_id = agent_id
        self.transport = transport
        self.window = window
        self.link = Link("hub")
        self.channels: dict[int, AgentChannel] = {}
        self._next_channel = 1
        self._out: deque[_Pending] = deque()
        self.control_queued = 0  # frames in _out that are not keystrokes
        self.abuse: LinkAbuse | None = None  # set once a limit is broken
        self._out_ready = asyncio.Event()
        self._input_bytes = 0
        self._input_room = asyncio.Condition()
        self._writer: asyncio.Task[None] | None = None
        self.on_metrics: Callable[[dict[str, Any]], None] | None = None
        self.closed = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def handshake(self, first: bytes) -> Hello:
        msg = self.link.receive(first)
        if not isinstance(msg, Hello):
            raise ProtocolError("expected Hello")
        if len(msg.channels) > MAX_HELD_CHANNELS:
            raise LinkAbuse(f"more than {MAX_HELD_CHANNELS} held channels claimed")
        version = max(set(msg.versions) & set(PROTOCOL_VERSIONS))
        self._next_channel = max(msg.channels, default=0) + 1
        self.send_control(Welcome(version))
        return msg

    def feed(self, frame: bytes) -> None:
        """One frame from the agent. Raises ProtocolError; the caller closes the link."""
        msg = self.link.receive(frame)
        self._dispatch(msg)
        if self.abuse is not None:
            raise self.abuse

    async def shutdown(
        self, code: int, reason: str, keep: Callable[[AgentChannel], None] | None = None
    ) -> None:
        """Close the link. Execs end; terminals go to `keep` (to wait for the agent to
        come back) or end too."""
        if self.closed.is_set():
            return
        self.closed.set()
        self.link.close()
        # Before the first wait: a new link of this agent must find its terminals set
        # aside (registry.keep), never half-way between the old link and the new.
        for ch in list(self.channels.values()):
            if keep is not None and ch.kind == "pty" and ch.exit_code is None:
                ch.detach()
                keep(ch)
            else:
                ch._exit(255)
        self.channels.clear()
        async with self._input_room:
            self._input_room.notify_all()
        if self._writer:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        with contextlib.suppress(Exception):
            await self.transport.close(code, reason)

    # -- channels -----------------------------------------------------------

    async def open_channel(
        self,
        kind: str,
        command: list[str] | None,
        *,
        env: dict[str, str] | None = None,
        cols: int = 80,
        rows: int = 24,
        cwd: str | None = None,
        window: int | None = None,
    ) -> AgentChannel:
        if self.closed.is_set():
            raise Conflict("The agent is offline.", code="agent_offline")
        channel = self._next_channel
        self._next_channel += 1
        ch = AgentChannel(self, channel, "pty" if kind == "pty" else "exec")
        self.channels[channel] = ch
        self.send_control(
            Open(
                channel,
                "pty" if kind == "pty" else "exec",
                None if command is None else tuple(command),
                env or {},
                cols,
                rows,
                window or self.window,
                cwd,
            )
        )
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                await ch.opened
        except TimeoutError:
            self.channels.pop(channel, None)
            raise Unavailable("The agent did not start the program in time.") from None
        except BaseException:
            self.channels.pop(channel, None)
            raise
        return ch

    # -- sending ------------------------------------------------------------

    def send_control(self, msg: Message) -> None:
        if self.closed.is_set():
            return
        try:
            frame = self.link.send(msg)
        except ProtocolError as exc:
            log.warning("agent %s: not sending %s: %s", self.agent_id, type(msg).__name__, exc)
            return
        if self.control_queued >= MAX_CONTROL_QUEUED:
            # Not read: drop the frame; the link is closed (_refuse).
            self._refuse(LinkAbuse("the agent does not read its link"))
            return
        self.control_queued += 1
        self._out.append(_Pending(frame, 0, control=True))
        self._out_ready.set()

    def _refuse(self, abuse: LinkAbuse) -> None:
        """Mark the link abusive: the next `feed` raises it and the reader closes the
        link. (An agent that sends nothing more is not reading WebSocket pings either:
        the heartbeat ends its link.)"""
        if self.abuse is None:
            self.abuse = abuse

    async def send_input(self, msg: Data) -> None:
        size = len(msg.payload)
        async with self._input_room:
            await self._input_room.wait_for(
                lambda: self._input_bytes + size <= INPUT_IN_FLIGHT or self.closed.is_set()
            )
            if self.closed.is_set():
                return
            self._input_bytes += size
        frame = self.link.send(msg)
        self._out.append(_Pending(frame, size))
        self._out_ready.set()

    async def _write_loop(self) -> None:
        while True:
            while not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
            item = self._out.popleft()
            if item.control:  # a keystroke frame, even an empty one, never counted
                self.control_queued -= 1
            await self.transport.send(item.frame)
            if item.input_bytes:
                async with self._input_room:
                    self._input_bytes -= item.input_bytes
                    self._input_room.notify_all()

    # -- receiving ----------------------------------------------------------

    def _dispatch(self, msg: Message) -> None:
        match msg:
            case Data():
                ch = self.channels.get(msg.channel)
                if ch is not None:
                    ch._received(msg)
            case Opened():
                ch = self.channels.get(msg.channel)
                if ch is not None and not ch.opened.done():
                    ch.opened.set_result(msg.pid)
            case Credit():  # input credit (protocol 2)
                ch = self.channels.get(msg.channel)
                if ch is not None:
                    ch._input_credited()
            case Exit():
                ch = self.channels.pop(msg.channel, None)
                if ch is not None:
                    ch._exit(msg.code)
            case Error(channel=0):
                log.warning("agent %s reports: %s %s", self.agent_id, msg.code, msg.message)
            case Error():
                ch = self.channels.pop(msg.channel, None)
                if ch is not None:
                    ch._failed(msg)
            case Ping():
                self.send_control(Pong(msg.nonce))
            case Metrics():
                if self.on_metrics is not None:
                    self.on_metrics(msg.values)
            case _:
                pass
