"""Keeping the record of sessions in the database as they start and end."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

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

    async def orphans(self) -> dict[tuple[str, int], tuple[str, str, datetime]]:
        """At start: sessions on agents may come back (the agent keeps their PTYs);
        every other session this process did not survive is over."""
        async with self.db.session() as s:
            rows = list(
                await s.scalars(select(TerminalSession).where(TerminalSession.status == "live"))
            )
            kept = {
                (r.target, r.channel): (r.id, r.user_id, r.started_at)
                for r in rows
                if r.channel is not None and r.target.startswith("agt_")
            }
            await s.execute(
                update(TerminalSession)
                .where(
                    TerminalSession.status == "live",
                    TerminalSession.id.not_in([v[0] for v in kept.values()] or [""]),
                )
                .values(status="ended", ended_at=utcnow())
            )
            await s.commit()
        return kept
