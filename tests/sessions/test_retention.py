"""Recording retention per plan, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hub.billing.plans import PlanBook, default_plans
from hub.db.engine import Database
from hub.db.models import TerminalSession, User, utcnow
from hub.sessions.recorder import recording_path
from hub.sessions.retention import prune


async def test_recordings_past_the_plan_retention_are_deleted(
    database_url: str, tmp_path: Path
) -> None:
    plans = default_plans()
    free_days = plans["free"].recording_retention_days
    assert free_days is not None
    book = PlanBook(plans, "free")
    db = Database(database_url)
    try:
        await db.migrate()
        now = utcnow()
        old = now - timedelta(days=free_days + 1)
        async with db.session() as s:
            s.add(User(id="usr_f", email="f@x.io", password_hash="x", plan="free"))
            await s.flush()
            for sid, ended, status in (
                ("ses_old", old, "ended"),  # past retention: goes
                ("ses_new", now, "ended"),  # recent: stays
                ("ses_live", None, "live"),  # still running: stays
            ):
                s.add(
                    TerminalSession(
                        id=sid,
                        user_id="usr_f",
                        target="agt_x",
                        status=status,
                        started_at=old,
                        ended_at=ended,
                    )
                )
            await s.commit()
        for sid in ("ses_old", "ses_new", "ses_live"):
            recording_path(tmp_path, sid).write_text("{}\n")
        assert await prune(db, book, tmp_path) == 1
        assert not recording_path(tmp_path, "ses_old").exists()
        assert recording_path(tmp_path, "ses_new").exists()
        assert recording_path(tmp_path, "ses_live").exists()
        assert await prune(db, book, tmp_path) == 0
    finally:
        await db.close()
