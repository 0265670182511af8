"""Keeping the record of sessions in the database as they start and end."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from hub.cluster import Cluster
from hub.db.engine import Database
from hub.db.models import TerminalSession, utcnow
from hub.sessions.broker import Session


class SessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def started(self, session: Session) -> None:
        channel = getattr(session.source, "channel", None)
        async with self.db.session() as s:
            s.add(
                TerminalSession(
                    id=session.id,
                    user_id=session.user_id,
                    target=session.target,
                    started_at=session.started_at,
                    channel=channel if isinstance(channel, int) else None,
                )
            )
            await s.commit()

    async def ended(self, session: Session) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(TerminalSession)
                .where(TerminalSession.id == session.id)
                .values(status="ended", ended_at=session.ended_at, exit_code=session.exit_code)
            )
            await s.commit()

    async def recorded(self, session_id: str, size: int, duration: float) -> None:
        """The recording is complete: its size counts towards usage (billing)."""
        async with self.db.session() as s:
            await s.execute(
                update(TerminalSession)
                .where(TerminalSession.id == session_id)
                .values(recording_bytes=size, duration=duration)
            )
            await s.commit()

    async def orphans(
        self, cluster: Cluster | None = None
    ) -> dict[tuple[str, int], tuple[str, str, datetime]]:
        """At start: sessions on agents may come back (the agent keeps their PTYs);
        every other session no live hub holds is over. (With several hubs, another
        node's live sessions are left alone: the cluster says who holds what.)"""
        async with self.db.session() as s:
            rows = list(
                await s.scalars(select(TerminalSession).where(TerminalSession.status == "live"))
            )
            elsewhere = (
                await cluster.held_anywhere("session", [r.id for r in rows])
                if cluster is not None
                else set()
            )
            kept = {
                (r.target, r.channel): (r.id, r.user_id, r.started_at)
                for r in rows
                if r.channel is not None and r.target.startswith("agt_")
            }
            spared = {v[0] for v in kept.values()} | elsewhere
            await s.execute(
                update(TerminalSession)
                .where(
                    TerminalSession.status == "live",
                    TerminalSession.id.not_in(list(spared) or [""]),
                )
                .values(status="ended", ended_at=utcnow())
            )
            await s.commit()
        return kept

    async def live_on(self, agent_id: str, channel: int) -> tuple[str, str, datetime] | None:
        """A live session on this agent's channel, left by a hub that is gone (failover)."""
        async with self.db.session() as s:
            row = await s.scalar(
                select(TerminalSession).where(
                    TerminalSession.status == "live",
                    TerminalSession.target == agent_id,
                    TerminalSession.channel == channel,
                )
            )
        return None if row is None else (row.id, row.user_id, row.started_at)
