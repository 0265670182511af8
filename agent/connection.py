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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from agent.channels import Channel, PtyChannel, make_channel
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
    Resume,
    Welcome,
)
from common.protocol.messages import MAX_FRAME
from common.sdnotify import Notifier

log = logging.getLogger("rexec.agent")
# Without a hub to reach, systemd is told the agent is up after this long anyway, so a
# `Type=notify` unit does not time out and restart-loop while the hub is down.
READY_ANYWAY_AFTER = 10.0
MOVE_CLOSE = 1012  # the hub is restarting or stopping: go to another one at once
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


class Agent:
    """What outlives a link: the channels, their replay rings, and the grace timers
    that end channels nobody takes up again. It is the channels' Port."""

    def __init__(
        self, settings: AgentSettings, status: Status, notifier: Notifier | None = None
    ) -> None:
        self.settings = settings
        self.status = status
        self.notifier = notifier or Notifier({})
        self.channels: dict[int, Channel] = {}
        self.link: AgentLink | None = None
        self._waiters: dict[int, asyncio.Event] = {}
        self._grace: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Port -----------------------------------------------------------------

    def available(self, channel: int) -> int:
        return self.link.link.available(channel) if self.link is not None else 0

    async def wait(self, channel: int) -> None:
        event = self._waiters.setdefault(channel, asyncio.Event())
        event.clear()
        if self.available(channel) <= 0:
            await event.wait()

    async def _send_live(self, channel: int, msg: Message) -> bool:
        """Send a frame of a channel the current link serves; False when there is no
        link to send it on (the caller waits for a new one)."""
        link = self.link
        if link is None or not link.link.is_live(channel):
            return False
        try:
            await link.send(msg)
        except ConnectionClosed:
            # A closed socket can fail a send without ever yielding: drop the link at
            # once, or a channel's loop would spin on it and starve everything else.
            self.link_down(link)
            return False
        except ProtocolError:
            return False
        return True

    async def send_data(self, channel: int, data: bytes, stream: int, seq: int) -> bool:
        return await self._send_live(channel, Data(channel, data, stream, seq))

    async def send_credit(self, channel: int, size: int) -> bool:
        """Input credit back to the hub, on links that speak protocol 2."""
        if self.link is None or not self.link.link.input_credit:
            return False
        return await self._send_live(channel, Credit(channel, size))

    async def send_exit(self, channel: int, code: int) -> bool:
        if not await self._send_live(channel, Exit(channel, code)):
            return False
        self._forget(channel)
        await write_status(self.status, self.settings.state_file)
        return True

    def wake(self, channel: int) -> None:
        event = self._waiters.get(channel)
        if event is not None:
            event.set()
        ch = self.channels.get(channel)
        if isinstance(ch, PtyChannel):
            ch.wake.set()

    # -- channels ---------------------------------------------------------------

    def held(self) -> dict[int, int]:
        """Channels a new link may take up: the oldest offset each can still replay."""
        return {
            cid: ch.ring.start
            for cid, ch in self.channels.items()
            if isinstance(ch, PtyChannel) and not ch.abandoned
        }

    async def open(self, msg: Open, link: AgentLink) -> None:
        channel = make_channel(msg, self, self.settings.shell, self.settings.replay_bytes)
        try:
            pid = await channel.start()
        except (OSError, ValueError) as exc:
            log.warning("channel %d: cannot start: %s", msg.channel, exc)
            await link.send(Error(msg.channel, "spawn_failed", f"cannot start the program: {exc}"))
            return
        self.channels[msg.channel] = channel
        self.status.sessions = len(self.channels)
        await link.send(Opened(msg.channel, pid))
        task = asyncio.create_task(channel.run())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        await write_status(self.status, self.settings.state_file)

    def resume(self, msg: Resume) -> None:
        ch = self.channels.get(msg.channel)
        timer = self._grace.pop(msg.channel, None)
        if timer is not None:
            timer.cancel()
        if isinstance(ch, PtyChannel):
            log.info("resuming channel %d at offset %d", msg.channel, msg.seq)
            ch.resume(msg.seq)

    def abandon(self, channel: int) -> None:
        ch = self.channels.get(channel)
        if isinstance(ch, PtyChannel):
            ch.abandon()
        self._forget(channel)

    def _forget(self, channel: int) -> None:
        self.channels.pop(channel, None)
        self._waiters.pop(channel, None)
        timer = self._grace.pop(channel, None)
        if timer is not None:
            timer.cancel()
        self.status.sessions = len(self.channels)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("channel task failed", exc_info=task.exception())

    def link_up(self, link: AgentLink) -> None:
        self.link = link

    def link_down(self, link: AgentLink) -> None:
        """Execs end with their link; terminals wait for a new one, up to the grace."""
        if self.link is not link:
            return
        self.link = None
        loop = asyncio.get_running_loop()
        for cid, ch in list(self.channels.items()):
            if isinstance(ch, PtyChannel) and not ch.abandoned:
                if cid not in self._grace:
                    self._grace[cid] = loop.call_later(
                        self.settings.channel_grace, self.abandon, cid
                    )
            else:
                ch.close(0.0)
                self._forget(cid)
            self.wake(cid)
        for event in self._waiters.values():
            event.set()

    def stop(self) -> None:
        for cid in list(self.channels):
            self.abandon(cid)


class AgentLink:
    """One connection: the protocol state and the frames in and out."""

    def __init__(self, ws: ClientConnection, agent: Agent) -> None:
        self.ws = ws
        self.agent = agent
        self.settings = agent.settings
        self.status = agent.status
        self.link = Link("agent")
        self._send_lock = asyncio.Lock()

    async def send(self, msg: Message) -> None:
        async with self._send_lock:
            frame = self.link.send(msg)
            await self.ws.send(frame)

    async def serve(self) -> None:
        held = self.agent.held()
        await self.send(Hello(PROTOCOL_VERSIONS, __version__, host_facts(), held))
        first = await asyncio.wait_for(self.ws.recv(), 10)
        if isinstance(first, str):
            raise ProtocolError("the hub sent text")
        welcome = self.link.receive(first)
        if not isinstance(welcome, Welcome):
            raise ProtocolError("expected Welcome")
        self.agent.link_up(self)
        self.status.state = "connected"
        self.status.since = time.time()
        self.status.last_error = None
        await write_status(self.status, self.settings.state_file)
        self.agent.notifier.ready(f"connected to {self.status.hub}")
        log.info(
            "connected to %s (protocol %d, %d sessions held)",
            self.status.hub,
            welcome.version,
            len(held),
        )
        metrics = asyncio.create_task(self._metrics_loop())
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    raise ProtocolError("the hub sent text")
                await self._dispatch(self.link.receive(frame))
        finally:
            metrics.cancel()
            self.agent.link_down(self)

    async def _dispatch(self, msg: Message) -> None:
        agent = self.agent
        match msg:
            case Open():
                await agent.open(msg, self)
            case Resume():
                agent.resume(msg)
            case Data():
                ch = agent.channels.get(msg.channel)
                if ch is not None and self.link.is_live(msg.channel):
                    ch.write(msg.payload)
            case Credit():
                agent.wake(msg.channel)
            case Resize():
                ch = agent.channels.get(msg.channel)
                if ch is not None and self.link.is_live(msg.channel):
                    ch.resize(msg.cols, msg.rows)
            case Eof():
                ch = agent.channels.get(msg.channel)
                if ch is not None and self.link.is_live(msg.channel):
                    ch.eof()
            case Close():
                ch = agent.channels.get(msg.channel)
                if ch is None:
                    pass
                elif self.link.is_live(msg.channel):
                    ch.close(msg.grace)
                else:  # held from an earlier link and not wanted by this hub
                    agent.abandon(msg.channel)
            case Ping():
                await self.send(Pong(msg.nonce))
            case Error(channel=0):
                log.warning("hub reports: %s: %s", msg.code, msg.message)
            case _:
                pass

    async def _metrics_loop(self) -> None:
        while True:
            values = await asyncio.to_thread(sample)
            with contextlib.suppress(ConnectionClosed):
                await self.send(Metrics(values))
            await asyncio.sleep(self.settings.metrics_interval)


_STATUS_WRITES = asyncio.Lock()  # one write at a time: the newest state lands last


async def write_status(status: Status, path: Path | None) -> None:
    if path is None:
        return
    async with _STATUS_WRITES:
        text = json.dumps(status.__dict__)

        def write() -> None:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
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


async def run(
    settings: AgentSettings,
    stop: asyncio.Event | None = None,
    notifier: Notifier | None = None,
) -> None:
    """Stay connected to the hub until `stop` is set or a fatal error occurs."""
    key = load_private(settings.key_file.read_bytes())
    status = Status(hub=settings.hub, agent_id=settings.agent_id)
    notifier = notifier or Notifier()
    agent = Agent(settings, status, notifier)
    stop = stop or asyncio.Event()
    watchdog = asyncio.create_task(notifier.watchdog())
    ready_anyway = asyncio.get_running_loop().call_later(
        READY_ANYWAY_AFTER, notifier.ready, "started; the hub is not reachable yet"
    )
    try:
        await _serve_forever(settings, key, agent, stop)
    finally:
        ready_anyway.cancel()
        watchdog.cancel()
        notifier.stopping()
        agent.stop()  # a clean stop ends the programs; the hub saw the 1001 close
        status.state = "stopped"
        await write_status(status, settings.state_file)


async def _serve_forever(
    settings: AgentSettings, key: Ed25519PrivateKey, agent: Agent, stop: asyncio.Event
) -> None:
    status = agent.status
    notifier = agent.notifier
    delays = backoff(initial=0.25, cap=settings.reconnect_cap)
    hubs = settings.hub_urls
    current = 0
    while not stop.is_set():
        status.state = "connecting"
        status.hub = hubs[current]
        await write_status(status, settings.state_file)
        linked = moving = False
        try:
            async with connect(
                settings.ws_url(hubs[current]),
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
                linked = True
                agent_link = AgentLink(ws, agent)
                served = asyncio.create_task(agent_link.serve())
                stopped = asyncio.create_task(stop.wait())
                await write_status(status, settings.state_file)
                done, _ = await asyncio.wait({served, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if stopped in done:
                    notifier.stopping()
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
            moving = rcvd is not None and rcvd.code == MOVE_CLOSE
            status.last_error = f"connection closed ({rcvd.code if rcvd else 'no close frame'})"
        except (OSError, InvalidHandshake, TimeoutError, ProtocolError) as exc:
            status.last_error = str(exc) or type(exc).__name__
        status.state = "disconnected"
        notifier.status(f"disconnected: {status.last_error}")
        log.info("hub link down: %s", status.last_error)
        await write_status(status, settings.state_file)
        # A hub that could not be reached, or that says it is going away, is left for
        # the next one; a link that merely dropped is tried again where it was.
        if moving or not linked:
            current = (current + 1) % len(hubs)
        if moving:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), next(delays))
