"""The agent's link to the hub: dial out, prove identity, serve channels, reconnect.

The protocol state lives in `common.protocol.Link`; this module only moves frames
between it and a `websockets` connection. A lock keeps the order in which frames
are validated the order in which they reach the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from agent.channels import Channel, Port, make_channel
from agent.metrics import host_facts, sample
from agent.settings import AgentSettings
from common import __version__
from common.agentauth import load_private, make_proof
from common.backoff import backoff
from common.errors import ProtocolError
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
    Welcome,
)
from common.protocol.messages import MAX_FRAME

log = logging.getLogger("rexec.agent")
FATAL_CLOSE = {4401: "the hub no longer accepts this agent", 4403: "the agent was deleted"}


class FatalError(Exception):
    """Retrying cannot help (agent deleted or unknown): stop with this message."""


@dataclass
class Status:
    """What `rexec-agent status` shows; written to the state file on changes."""

    hub: str
    agent_id: str
    state: str = "starting"
    since: float = field(default_factory=time.time)
    sessions: int = 0
    last_error: str | None = None
    pid: int = field(default_factory=os.getpid)


class AgentLink:
    """One connection's worth of state: protocol, channels, credit waiters."""

    def __init__(self, ws: ClientConnection, settings: AgentSettings, status: Status) -> None:
        self.ws = ws
        self.settings = settings
        self.status = status
        self.link = Link("agent")
        self.channels: dict[int, Channel] = {}
        self._credit: dict[int, asyncio.Event] = {}
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = Port(self.link.available, self._wait_credit, self._send_data, self._send_exit)

    async def send(self, msg: Message) -> None:
        async with self._send_lock:
            frame = self.link.send(msg)
            await self.ws.send(frame)

    async def _send_data(self, channel: int, data: bytes, stream: int) -> None:
        async with self._send_lock:
            frame = self.link.send(Data(channel, data, stream, self.link.next_seq(channel)))
            await self.ws.send(frame)

    async def _send_exit(self, channel: int, code: int) -> None:
        self.channels.pop(channel, None)
        self._credit.pop(channel, None)
        self.status.sessions = len(self.channels)
        with contextlib.suppress(ConnectionClosed, ProtocolError):
            await self.send(Exit(channel, code))
        await write_status(self.status, self.settings.state_file)

    async def _wait_credit(self, channel: int) -> None:
        event = self._credit.setdefault(channel, asyncio.Event())
        event.clear()
        if self.link.available(channel) <= 0:
            await event.wait()

    async def serve(self) -> None:
        await self.send(Hello(PROTOCOL_VERSIONS, __version__, host_facts()))
        first = await asyncio.wait_for(self.ws.recv(), 10)
        if isinstance(first, str):
            raise ProtocolError("the hub sent text")
        welcome = self.link.receive(first)
        if not isinstance(welcome, Welcome):
            raise ProtocolError("expected Welcome")
        self.status.state = "connected"
        self.status.since = time.time()
        self.status.last_error = None
        await write_status(self.status, self.settings.state_file)
        log.info("connected to %s (protocol %d)", self.settings.hub, welcome.version)
        metrics = asyncio.create_task(self._metrics_loop())
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    raise ProtocolError("the hub sent text")
                await self._dispatch(self.link.receive(frame))
        finally:
            metrics.cancel()
            self._close_all()

    async def _dispatch(self, msg: Message) -> None:
        match msg:
            case Open():
                await self._open(msg)
            case Data():
                ch = self.channels.get(msg.channel)
                if ch is not None:
                    ch.write(msg.payload)
            case Credit():
                event = self._credit.get(msg.channel)
                if event is not None:
                    event.set()
            case Resize():
                ch = self.channels.get(msg.channel)
                if ch is not None:
                    ch.resize(msg.cols, msg.rows)
            case Eof():
                ch = self.channels.get(msg.channel)
                if ch is not None:
                    ch.eof()
            case Close():
                ch = self.channels.get(msg.channel)
                if ch is not None:
                    ch.close(msg.grace)
            case Ping():
                await self.send(Pong(msg.nonce))
            case Error(channel=0):
                log.warning("hub reports: %s: %s", msg.code, msg.message)
            case _:
                pass

    async def _open(self, msg: Open) -> None:
        channel = make_channel(msg, self.port, self.settings.shell)
        try:
            pid = await channel.start()
        except (OSError, ValueError) as exc:
            log.warning("channel %d: cannot start: %s", msg.channel, exc)
            await self.send(Error(msg.channel, "spawn_failed", f"cannot start the program: {exc}"))
            return
        self.channels[msg.channel] = channel
        self.status.sessions = len(self.channels)
        await self.send(Opened(msg.channel, pid))
        task = asyncio.create_task(channel.run())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        await write_status(self.status, self.settings.state_file)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("channel task failed", exc_info=task.exception())

    def _close_all(self) -> None:
        # Issue #4 keeps PTYs across a dropped link; until then they end with it.
        for ch in list(self.channels.values()):
            ch.close(1.0)
        for event in self._credit.values():
            event.set()

    async def _metrics_loop(self) -> None:
        while True:
            values = await asyncio.to_thread(sample)
            with contextlib.suppress(ConnectionClosed):
                await self.send(Metrics(values))
            await asyncio.sleep(self.settings.metrics_interval)


async def write_status(status: Status, path: Path | None) -> None:
    if path is None:
        return

    def write() -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(status.__dict__))
        os.replace(tmp, path)

    with contextlib.suppress(OSError):
        await asyncio.to_thread(write)


def _http_error(exc: InvalidStatus) -> str:
    body = exc.response.body or b""
    try:
        err = json.loads(body)["error"]
        return f"{err['message']} ({err['code']})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.response.status_code}"


async def run(settings: AgentSettings, stop: asyncio.Event | None = None) -> None:
    """Stay connected to the hub until `stop` is set or a fatal error occurs."""
    key = load_private(settings.key_file.read_bytes())
    status = Status(hub=settings.hub, agent_id=settings.agent_id)
    delays = backoff(initial=0.25, cap=settings.reconnect_cap)
    stop = stop or asyncio.Event()
    while not stop.is_set():
        status.state = "connecting"
        await write_status(status, settings.state_file)
        try:
            async with connect(
                settings.ws_url,
                additional_headers={
                    "Authorization": f"Bearer {make_proof(settings.agent_id, key)}"
                },
                compression=None,
                max_size=MAX_FRAME + 64,
                open_timeout=10,
                ping_interval=20,
                ping_timeout=20,
                user_agent_header=f"rexec-agent/{__version__}",
            ) as ws:
                delays = backoff(initial=0.25, cap=settings.reconnect_cap)
                agent_link = AgentLink(ws, settings, status)
                served = asyncio.create_task(agent_link.serve())
                stopped = asyncio.create_task(stop.wait())
                await write_status(status, settings.state_file)
                done, _ = await asyncio.wait({served, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if stopped in done:
                    served.cancel()
                    await ws.close(1001, "agent stopping")
                    break
                stopped.cancel()
                served.result()
        except InvalidStatus as exc:
            code = exc.response.status_code
            message = _http_error(exc)
            if code in (401, 403, 404):
                status.state, status.last_error = "stopped", message
                await write_status(status, settings.state_file)
                raise FatalError(f"the hub refused this agent: {message}") from None
            status.last_error = message
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            if rcvd is not None and rcvd.code in FATAL_CLOSE:
                status.state, status.last_error = "stopped", FATAL_CLOSE[rcvd.code]
                await write_status(status, settings.state_file)
                raise FatalError(FATAL_CLOSE[rcvd.code]) from None
            status.last_error = f"connection closed ({rcvd.code if rcvd else 'no close frame'})"
        except (OSError, InvalidHandshake, TimeoutError, ProtocolError) as exc:
            status.last_error = str(exc) or type(exc).__name__
        status.state = "disconnected"
        log.info("hub link down: %s", status.last_error)
        await write_status(status, settings.state_file)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), next(delays))
    status.state = "stopped"
    await write_status(status, settings.state_file)
