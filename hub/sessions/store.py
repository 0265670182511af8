"""Keeping the record of sessions in the database as they start and end."""

from __future__ import annotations

from sqlalchemy import update

from hub.db.engine import Database
from hub.db.models import TerminalSession
from hub.sessions.broker import Session


class SessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def started(self, session: Session) -> None:
        async with self.db.session() as s:
            s.add(
                TerminalSession(
                    id=session.id,
                    user_id=session.user_id,
                    target=session.target,
                    started_at=session.started_at,
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

    async def close_stale(self) -> None:
        """At start: sessions this process did not survive are over."""
        from hub.db.models import utcnow

        async with self.db.session() as s:
            await s.execute(
                update(TerminalSession)
                .where(TerminalSession.status == "live")
                .values(status="ended", ended_at=utcnow())
            )
            await s.commit()
