"""Metering in the database, on SQLite and PostgreSQL: intervals cut to the period,
heartbeats only for what still runs, and the sweep that closes what ended unseen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.billing import usage
from hub.db.engine import Database
from hub.db.models import Container, TerminalSession, UsageRecord, User, utcnow


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    async with database.session() as s:
        s.add(User(id="usr_a", email="a@x.io", password_hash="x"))
        await s.commit()
    yield database
    await database.close()


def test_month_of() -> None:
    start, end = usage.month_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


async def test_seconds_are_cut_to_the_period(db: Database) -> None:
    t0 = datetime(2026, 11, 30, 23, 59, 0, tzinfo=UTC)
    await usage.start(db, "usr_a", usage.CONTAINER, "ctr_1", t0)
    await usage.end(db, "ctr_1", t0 + timedelta(minutes=2))  # 60 s in each month
    await usage.start(db, "usr_a", usage.CONTAINER, "ctr_2", t0 + timedelta(minutes=5))
    nov = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    dec = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    now = t0 + timedelta(minutes=10)  # ctr_2 still open: counts to now
    assert await usage.seconds(db, "usr_a", usage.CONTAINER, *nov, now) == 60
    assert await usage.seconds(db, "usr_a", usage.CONTAINER, *dec, now) == 60 + 300
    assert await usage.seconds(db, "usr_a", usage.SESSION, *dec, now) == 0


async def test_heartbeat_and_sweep(db: Database) -> None:
    old = utcnow() - timedelta(minutes=5)
    async with db.session() as s:
        s.add(
            Container(
                id="ctr_run",
                user_id="usr_a",
                name="r",
                image="i",
                status="running",
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        s.add(
            Container(
                id="ctr_gone",
                user_id="usr_a",
                name="g",
                image="i",
                status="removed",
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        s.add(TerminalSession(id="ses_orphan", user_id="usr_a", target="agt_x", status="live"))
        s.add(TerminalSession(id="ses_dead", user_id="usr_a", target="ctr_run", status="ended"))
        await s.commit()
    for meter, subject in (
        (usage.CONTAINER, "ctr_run"),
        (usage.CONTAINER, "ctr_gone"),
        (usage.SESSION, "ses_live"),
        (usage.SESSION, "ses_orphan"),
        (usage.SESSION, "ses_dead"),
    ):
        await usage.start(db, "usr_a", meter, subject, old)
    now = utcnow()
    await usage.heartbeat(db, ["ses_live"], now)
    await usage.sweep(db, ["ses_live"], now - timedelta(seconds=20))
    async with db.session() as s:
        rows = {r.subject: r for r in await s.scalars(select(UsageRecord))}
    # Still running: beaten, open.
    assert rows["ctr_run"].checked_at == now and rows["ctr_run"].ended_at is None
    assert rows["ses_live"].checked_at == now and rows["ses_live"].ended_at is None
    # A session an agent may still give back stays open, unbeaten.
    assert rows["ses_orphan"].ended_at is None and rows["ses_orphan"].checked_at == old
    # Ended unseen: closed at the last heartbeat.
    assert rows["ctr_gone"].ended_at == old and rows["ses_dead"].ended_at == old
