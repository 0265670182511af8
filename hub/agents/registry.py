"""Agents: registration tokens, registration, their records and live connections."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from common.agentauth import LEEWAY, load_public, unverified_agent_id, verify_proof
from common.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from common.ids import new_id
from common.protocol import Close, Hello
from hub import audit, lifecycle
from hub.agents.connection import AgentChannel, AgentConnection
from hub.billing import plans
from hub.cluster import Cluster
from hub.db.engine import Database
from hub.db.models import Agent, AgentProof, AgentToken, TerminalSession, utcnow
from hub.security import hash_token, new_token
from hub.sessions.broker import Broker
from hub.sessions.store import SessionStore
from hub.settings import HubSettings

log = logging.getLogger("rexec.hub.agents")
# Metrics frames are coalesced: the latest is written, at most once per this many
# seconds per agent, however fast an agent sends them.
METRICS_EVERY = 5.0


class AgentRegistry:
    """The rules about agents; handlers translate HTTP and WebSockets to these calls."""

    def __init__(
        self, db: Database, settings: HubSettings, broker: Broker, cluster: Cluster | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.broker = broker
        self.cluster = cluster
        self.store = SessionStore(db)
        # Called with a session id this hub takes up, so others holding it let go.
        self.on_moved: Callable[[str], Awaitable[None]] | None = None
        self.live: dict[str, AgentConnection] = {}
        self._metrics_tasks: set[asyncio.Task[None]] = set()
        self._metrics_latest: dict[str, dict[str, Any]] = {}  # not written yet
        self._metrics_written: dict[str, float] = {}  # agent -> monotonic time of last write
        # Terminals whose agent link dropped, waiting for the agent to come back.
        self.detached: dict[tuple[str, int], tuple[AgentChannel, asyncio.TimerHandle]] = {}
        # Live sessions a previous hub process left in the database: (agent, channel) ->
        # (session id, user id), taken up when the agent comes back.
        self.orphans: dict[tuple[str, int], tuple[str, str, datetime]] = {}

    # -- registration -------------------------------------------------------

    async def create_token(
        self, user_id: str, name: str | None, expires_in: int | None
    ) -> tuple[str, AgentToken]:
        await plans.check_agents(self.db, self.settings, user_id)
        ttl = min(expires_in or self.settings.agent_token_ttl, 7 * 86400)
        token = new_token("rxa_")
        row = AgentToken(
            id=new_id("atk"),
            user_id=user_id,
            name=name,
            token_hash=hash_token(token),
            expires_at=utcnow() + timedelta(seconds=ttl),
        )
        async with self.db.session() as s:
            s.add(row)
            await s.commit()
        await audit.record(self.db, "agent.token_created", user_id=user_id, target=row.id)
        return token, row

    async def register(self, token: str, fields: dict[str, str]) -> Agent:
        """Spend a registration token and record the agent with its public key."""
        try:
            load_public(fields["public_key"])
        except ValueError as exc:
            raise InvalidRequest(str(exc), details={"field": "public_key"}) from None
        now = utcnow()
        async with self.db.session() as s:
            row = await s.scalar(
                select(AgentToken).where(AgentToken.token_hash == hash_token(token))
            )
            if row is None or row.expires_at <= now:
                raise Unauthorized(
                    "The registration token is unknown or has expired; create a new one.",
                    code="invalid_token",
                )
            await plans.check_agents(self.db, self.settings, row.user_id)
            spent = await s.execute(
                update(AgentToken)
                .where(AgentToken.id == row.id, AgentToken.used_at.is_(None))
                .values(used_at=now)
            )
            if spent.rowcount != 1:  # type: ignore[attr-defined]
                raise Unauthorized(
                    "The registration token was already used; create a new one.",
                    code="token_used",
                )
            agent = Agent(
                id=new_id("agt"),
                user_id=row.user_id,
                name=fields["name"] or row.name or fields.get("hostname") or "agent",
                public_key=fields["public_key"].strip(),
                hostname=fields.get("hostname", ""),
                os=fields.get("os", ""),
                arch=fields.get("arch", ""),
                version=fields.get("version", ""),
            )
            s.add(agent)
            await s.commit()
        await lifecycle.agent_event(self.db, "agent.registered", agent)
        return agent

    # -- records --------------------------------------------------------------

    async def list(self, user_id: str) -> list[Agent]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(Agent)
                .where(Agent.user_id == user_id, Agent.deleted_at.is_(None))
                .order_by(Agent.created_at.desc())
            )
            return list(rows)

    async def get(self, user_id: str, agent_id: str) -> Agent:
        """The caller's agent, by id; 404 for unknown and for other users' agents."""
        missing = NotFound("No such agent.", code="agent_not_found")
        return await self.db.owned(
            Agent, "agt", agent_id, user_id, missing, lambda a: a.deleted_at is None
        )

    async def delete(self, user_id: str, agent_id: str) -> None:
        agent = await self.get(user_id, agent_id)
        async with self.db.session() as s:
            await s.execute(update(Agent).where(Agent.id == agent.id).values(deleted_at=utcnow()))
            await s.commit()
        await lifecycle.agent_event(self.db, "agent.deleted", agent)
        await self.forget(agent.id)

    async def forget(self, agent_id: str) -> None:
        """A deleted agent: close its link if this hub holds it, end what waits for it.
        (With several hubs every hub is told: see hub/commands.py.)"""
        self._metrics_written.pop(agent_id, None)
        conn = self.live.pop(agent_id, None)
        if conn is not None:
            await conn.shutdown(4403, "agent deleted")
            if self.cluster is not None:
                await self.cluster.let_go("agent", agent_id)
        for key in [k for k in self.detached if k[0] == agent_id]:
            self._expire(key)

    def connection(self, agent_id: str) -> AgentConnection:
        conn = self.live.get(agent_id)
        if conn is None or conn.closed.is_set():
            raise Conflict("The agent is offline.", code="agent_offline")
        return conn

    def holds(self, agent_id: str) -> bool:
        conn = self.live.get(agent_id)
        return conn is not None and not conn.closed.is_set()

    async def elsewhere(self, agent_id: str) -> str | None:
        """The URL of the hub holding this agent's link, when another hub holds it."""
        if self.holds(agent_id) or self.cluster is None:
            return None
        return await self.cluster.where("agent", agent_id)

    async def statuses(self, agent_ids: Sequence[str]) -> dict[str, str]:
        """online/offline for each agent, wherever its link is held."""
        online = {a for a in agent_ids if self.holds(a)}
        if self.cluster is not None:
            online |= await self.cluster.held_anywhere("agent", agent_ids)
        return {a: "online" if a in online else "offline" for a in agent_ids}

    # -- the agent's own connection ---------------------------------------------

    async def authenticate(self, agent_id: str, proof: str | None) -> Agent:
        """Check the proof against the stored public key of a live (not deleted) agent."""
        if not proof:
            raise Unauthorized("The agent must send a signed proof.", code="invalid_token")
        if unverified_agent_id(proof) != agent_id:
            raise Unauthorized("The proof names another agent.", code="invalid_token")
        async with self.db.session() as s:
            agent = await s.get(Agent, agent_id)
        if agent is None:
            raise NotFound("No such agent.", code="agent_not_found")
        if agent.deleted_at is not None:
            raise Unauthorized("This agent was deleted; register it again.", code="agent_revoked")
        claims = verify_proof(proof, agent.public_key, self.settings.agent_proof_max_age)
        await self._spend_proof(agent.id, claims["jti"], claims["exp"])
        return agent

    async def _spend_proof(self, agent_id: str, jti: str, exp: int) -> None:
        """Record a proof as used; a second use, on this hub or any other sharing the
        database, is refused. Rows go once the proof could not verify any more."""
        now = utcnow()
        expires = datetime.fromtimestamp(exp + LEEWAY, UTC)
        async with self.db.session() as s:
            await s.execute(delete(AgentProof).where(AgentProof.expires_at < now))
            s.add(AgentProof(agent_id=agent_id, jti=jti, expires_at=expires))
            try:
                await s.commit()
            except IntegrityError:
                raise Unauthorized(
                    "This agent proof was already used; sign a new one.", code="invalid_token"
                ) from None

    async def attach(self, conn: AgentConnection, hello: Hello) -> None:
        old = self.live.get(conn.agent_id)
        self.live[conn.agent_id] = conn
        if old is not None and old is not conn:
            await old.shutdown(4409, "replaced by a newer connection", keep=self.keep)
        if self.cluster is not None:
            await self.cluster.hold("agent", conn.agent_id)
        await self._take_up(conn, hello.channels)
        facts = hello.facts
        values: dict[str, Any] = {"last_seen": utcnow()}
        for key in ("hostname", "os", "arch", "version"):
            if isinstance(facts.get(key), str):
                values[key] = facts[key][:255]
        async with self.db.session() as s:
            await s.execute(update(Agent).where(Agent.id == conn.agent_id).values(**values))
            await s.commit()
        conn.on_metrics = lambda m: self._metrics(conn.agent_id, m)

    # -- terminals across links ------------------------------------------------

    def keep(self, channel: AgentChannel) -> None:
        """A terminal whose link dropped waits for its agent, up to the grace period."""
        key = (channel.agent_id, channel.channel)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.settings.session_grace_seconds, self._expire, key)
        self.detached[key] = (channel, timer)

    def _expire(self, key: tuple[str, int]) -> None:
        entry = self.detached.pop(key, None)
        if entry is not None:
            channel, timer = entry
            timer.cancel()
            channel._exit(255)

    async def _take_up(self, conn: AgentConnection, held: dict[int, int]) -> None:
        """Resume what the agent still holds, or tell it to let go. A session this
        process never saw may be in the database: its hub died and the agent came
        here instead (several hubs: docs/cluster.md)."""
        for number, oldest in sorted(held.items()):
            key = (conn.agent_id, number)
            entry = self.detached.pop(key, None)
            if entry is not None:
                channel, timer = entry
                timer.cancel()
                channel.rebind(conn)
                continue
            orphan = self.orphans.pop(key, None) or await self.store.live_on(*key)
            session = self.broker.get(orphan[0]) if orphan is not None else None
            if session is not None and isinstance(session.source, AgentChannel):
                # Still held here (one session id is one object): its clients stay on it.
                session.source.rebind(conn)
                continue
            if orphan is not None:
                if self.on_moved is not None:  # a hub that still has it lets go
                    await self.on_moved(orphan[0])
                session_id, user_id, started_at = orphan
                channel = AgentChannel(conn, number, "pty", agent_id=conn.agent_id)
                channel.held_start = oldest
                conn.channels[number] = channel
                self.broker.create(
                    user_id=user_id,
                    target=conn.agent_id,
                    source=channel,
                    session_id=session_id,
                    awaiting_offset=True,
                    started_at=started_at,
                )
                log.info("took up session %s on agent %s", session_id, conn.agent_id)
                continue
            conn.send_control(Close(number, 0.0))

    async def let_go_of(self, session_id: str) -> None:
        """Another hub took up this session: drop our copy and the link it waits on."""
        session = self.broker.abandon(session_id)
        if session is None:
            return
        for key, (channel, timer) in list(self.detached.items()):
            if channel is session.source:
                timer.cancel()
                del self.detached[key]
        if self.cluster is not None:
            await self.cluster.let_go("session", session_id)
        log.info("session %s moved to another hub", session_id)

    def orphans_expire_in(self, seconds: float) -> None:
        """Sessions left by an earlier process whose agent does not come back end."""
        loop = asyncio.get_running_loop()
        loop.call_later(seconds, lambda: self._spawn(self._end_orphans()))

    async def _end_orphans(self) -> None:
        ids = [sid for sid, _, _ in self.orphans.values()]
        self.orphans.clear()
        if self.cluster is not None:  # taken up by another hub meanwhile
            ids = list(set(ids) - await self.cluster.held_anywhere("session", ids))
        if ids:
            async with self.db.session() as s:
                await s.execute(
                    update(TerminalSession)
                    .where(TerminalSession.id.in_(ids), TerminalSession.status == "live")
                    .values(status="ended", ended_at=utcnow())
                )
                await s.commit()

    def orphan_session(self, session_id: str) -> bool:
        return any(sid == session_id for sid, _, _ in self.orphans.values())

    async def link_ended(self, conn: AgentConnection, *, keep: bool) -> None:
        """A link is gone. Its terminals are set aside (or ended) first, before anything
        waits: the agent's next link may arrive during the database write below, and
        must find them there to rebind, not build a second session from the database."""
        await conn.shutdown(1000, "bye", keep=self.keep if keep else None)
        await self.detach(conn)

    async def detach(self, conn: AgentConnection) -> None:
        if self.live.get(conn.agent_id) is conn:
            del self.live[conn.agent_id]
            if self.cluster is not None:
                await self.cluster.let_go("agent", conn.agent_id)
            async with self.db.session() as s:
                await s.execute(
                    update(Agent).where(Agent.id == conn.agent_id).values(last_seen=utcnow())
                )
                await s.commit()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._metrics_tasks.add(task)
        task.add_done_callback(self._metrics_tasks.discard)

    def _metrics(self, agent_id: str, metrics: dict[str, Any]) -> None:
        """Keep the latest frame; one flush per agent is pending at a time."""
        clean = {k: v for k, v in list(metrics.items())[:32] if isinstance(v, int | float | str)}
        pending = agent_id in self._metrics_latest
        self._metrics_latest[agent_id] = clean
        if not pending:
            self._spawn(self._flush_metrics(agent_id))

    async def _flush_metrics(self, agent_id: str) -> None:
        last = self._metrics_written.get(agent_id)
        if last is not None:
            await asyncio.sleep(last + METRICS_EVERY - time.monotonic())
        clean = self._metrics_latest.pop(agent_id)
        self._metrics_written[agent_id] = time.monotonic()
        async with self.db.session() as s:
            await s.execute(
                update(Agent).where(Agent.id == agent_id).values(metrics=clean, last_seen=utcnow())
            )
            await s.commit()

    async def shutdown(self) -> None:
        for task in list(self._metrics_tasks):  # unwritten metrics are stale by next start
            task.cancel()
        for conn in list(self.live.values()):
            await conn.shutdown(1001, "hub shutting down")
        self.live.clear()
        for _, timer in self.detached.values():
            timer.cancel()
        self.detached.clear()
