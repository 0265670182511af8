"""Several hubs, one service: what hubs share through Redis (docs/cluster.md).

With `REXEC_REDIS_URL` set, each hub process is a node with an id of its own and
keeps in Redis, under keys that expire unless refreshed:
- `{prefix}:node:{node}`: the URL other hubs reach it at;
- `{prefix}:agent:{id}` and `{prefix}:session:{id}`: which node holds an agent's link
  and a live session, so a hub that does not hold them can relay to the one that does.
Notifications between hubs ride on Redis pub/sub (`RedisBus`). Nothing here is the
source of truth for accounts or sessions: that is the database; Redis holds only what
dies with the processes, so losing it costs routing for a few seconds, never data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.backoff import backoff
from hub.bus import LocalBus, Subscription

log = logging.getLogger("rexec.hub.cluster")
TTL = 15  # seconds a node's keys outlive its last heartbeat
HEARTBEAT = 5.0
Kind = Literal["agent", "session"]

# Delete a key only while it still names this node (another may have taken it over).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_node_id() -> str:
    return f"node-{secrets.token_hex(6)}"


class RedisBus:
    """The bus across hubs: one pub/sub connection per hub, fanned out locally.

    A topic is subscribed in Redis while at least one local subscriber wants it;
    `subscribe` returns once Redis has confirmed, so a subscriber that then reads the
    database cannot miss a change published after its read.
    """

    def __init__(self, redis: Redis, node_id: str, prefix: str = "rexec") -> None:
        self.redis = redis
        self.p = f"{prefix}:"
        self._local = LocalBus()
        self._pubsub = redis.pubsub()
        self._wanted: dict[str, int] = {}
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._own = f"{self.p}bus:{node_id}"
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._subscribe_channel(self._own)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        await self.redis.publish(f"{self.p}bus:{topic}", json.dumps(message))

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        channel = f"{self.p}bus:{topic}"
        async with self._lock:
            count = self._wanted.get(channel, 0)
            self._wanted[channel] = count + 1
        try:
            async with self._local.subscribe(topic) as sub:
                if count == 0:
                    await self._subscribe_channel(channel)
                yield sub
        finally:
            async with self._lock:
                left = self._wanted.get(channel, 1) - 1
                if left <= 0:
                    self._wanted.pop(channel, None)
                    with contextlib.suppress(RedisError, ConnectionError):
                        await self._pubsub.unsubscribe(channel)
                else:
                    self._wanted[channel] = left

    async def _subscribe_channel(self, channel: str) -> None:
        done = asyncio.get_running_loop().create_future()
        self._confirm[channel] = done
        await self._pubsub.subscribe(channel)
        if self._reader is None:  # the first subscription, before the reader runs
            while not done.done():
                msg = await self._pubsub.get_message(timeout=1.0)
                if msg is not None:
                    self._dispatch(msg)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), 5.0)
        self._confirm.pop(channel, None)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        channel = str(msg["channel"])
        if msg["type"] == "subscribe":
            fut = self._confirm.get(channel)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif msg["type"] == "message":
            try:
                data = json.loads(msg["data"])
            except ValueError:
                log.warning("ignored a malformed bus message on %s", channel)
                return
            if isinstance(data, dict):
                self._local.deliver(channel.removeprefix(f"{self.p}bus:"), data)

    async def _read(self) -> None:
        delays = backoff(initial=0.2, cap=5.0)
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=5.0)
                if msg is not None:
                    self._dispatch(msg)
                delays = backoff(initial=0.2, cap=5.0)
            except asyncio.CancelledError:
                raise
            except (RedisError, ConnectionError, OSError) as exc:
                log.warning("bus: Redis unreachable (%s); resubscribing", exc)
                await asyncio.sleep(next(delays))
                with contextlib.suppress(RedisError, ConnectionError, OSError):
                    await self._pubsub.subscribe(self._own, *self._wanted)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(RedisError, ConnectionError, OSError):
            await self._pubsub.aclose()


class Cluster:
    """This node's view of the others: where agents and sessions are, who is signed out."""

    def __init__(self, redis: Redis, node_id: str, prefix: str = "rexec") -> None:
        self.redis = redis
        self.p = f"{prefix}:"
        self.prefix = prefix
        self.node_id = node_id
        self.url: str | None = None
        self._held: dict[Kind, set[str]] = {"agent": set(), "session": set()}
        self._beat: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._release = redis.register_script(_RELEASE)

    @classmethod
    def connect(cls, url: str, node_id: str, prefix: str = "rexec") -> Cluster:
        redis = Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=5, decode_responses=True
        )
        return cls(redis, node_id, prefix)

    async def start(self) -> None:
        await self.redis.ping()
        self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def advertise(self, url: str) -> None:
        """Say where other hubs reach this one (once its port is known)."""
        self.url = url.rstrip("/")
        await self.redis.set(f"{self.p}node:{self.node_id}", self.url, ex=TTL)

    async def hold(self, kind: Kind, ident: str) -> None:
        self._held[kind].add(ident)
        with contextlib.suppress(RedisError, ConnectionError, OSError):
            await self.redis.set(f"{self.p}{kind}:{ident}", self.node_id, ex=TTL)

    def hold_soon(self, kind: Kind, ident: str) -> None:
        """`hold` from synchronous code: held at once here, announced a moment later."""
        self._held[kind].add(ident)
        task = asyncio.get_running_loop().create_task(self.hold(kind, ident))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def let_go(self, kind: Kind, ident: str) -> None:
        self._held[kind].discard(ident)
        with contextlib.suppress(RedisError, ConnectionError, OSError):
            await self._release(keys=[f"{self.p}{kind}:{ident}"], args=[self.node_id])

    async def where(self, kind: Kind, ident: str) -> str | None:
        """The URL of the other node that holds it; None when nobody (else) does."""
        found = await self.redis.get(f"{self.p}{kind}:{ident}")
        node = None if found is None else str(found)  # decode_responses: already text
        if node is None or node == self.node_id:
            return None
        return (await self._alive({node})).get(node)

    async def held_anywhere(self, kind: Kind, idents: Sequence[str]) -> set[str]:
        """Which of these a live node holds (two round trips, for listings)."""
        if not idents:
            return set()
        found = await self.redis.mget([f"{self.p}{kind}:{i}" for i in idents])
        nodes = [None if n is None else str(n) for n in found]
        alive = (await self._alive({n for n in nodes if n is not None})).keys() | {self.node_id}
        return {i for i, n in zip(idents, nodes, strict=True) if n in alive}

    async def _alive(self, nodes: set[str]) -> dict[str, str]:
        """The other nodes among these that run, with their URLs: those whose address
        key has not expired and is not this node's own address (a node there before
        this one was this address's previous process, killed before it let go)."""
        others = sorted(nodes - {self.node_id})
        urls = await self.redis.mget([f"{self.p}node:{n}" for n in others]) if others else []
        return {
            n: str(url)
            for n, url in zip(others, urls, strict=True)
            if url is not None and url != self.url
        }

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                pipe = self.redis.pipeline(transaction=False)
                if self.url is not None:
                    pipe.set(f"{self.p}node:{self.node_id}", self.url, ex=TTL)
                for kind, idents in self._held.items():
                    for ident in idents:
                        pipe.set(f"{self.p}{kind}:{ident}", self.node_id, ex=TTL)
                await pipe.execute()
            except (RedisError, ConnectionError, OSError) as exc:
                log.warning("cluster heartbeat failed: %s", exc)

    async def let_go_of_all(self) -> None:
        """A graceful stop: say at once that this node holds nothing any more, so the
        hubs that agents and clients move to need not wait for the keys to expire."""
        if self._beat is not None:
            self._beat.cancel()
        with contextlib.suppress(RedisError, ConnectionError, OSError):
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(f"{self.p}node:{self.node_id}")
            for kind, idents in self._held.items():
                for ident in idents:
                    await self._release(
                        keys=[f"{self.p}{kind}:{ident}"], args=[self.node_id], client=pipe
                    )
            await pipe.execute()
        for idents in self._held.values():
            idents.clear()

    async def close(self) -> None:
        await self.let_go_of_all()
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        await self.redis.aclose()
