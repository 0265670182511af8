"""Usage metering: container-seconds, session-seconds and recording bytes, kept in the
database so that they survive any stop of the hub.

Each container run and each terminal session is an interval (`usage_records`), opened
when it starts and closed when it ends. While it is open the hub writes a heartbeat
(`checked_at`) every few seconds. After a `kill -9`:
- containers keep running without the hub, so their intervals stay open; at start the
  hub's reconcile finds them running and they go on counting until they really end;
  one that ended while the hub was down is closed at the time Docker's event log gives
  for its end, else at the last heartbeat;
- terminal sessions on agents may be taken up again by the new process (the agent
  keeps their PTYs): they go on counting until they end; sessions never taken up are
  closed at their last heartbeat by the sweep.
So the seconds counted are the seconds that really ran, to within one heartbeat at
worst, and exactly in the common cases.

Usage for a period is computed on demand: the overlap of every interval with the
period, open intervals running to now. Recording bytes come from the session records
(`terminal_sessions.recording_bytes`) of sessions started in the period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from hub.db.engine import Database
from hub.db.models import Agent, Container, TerminalSession, UsageRecord, utcnow

if TYPE_CHECKING:
    from hub.containers.engine import Engine
    from hub.sessions.broker import Session

log = logging.getLogger("rexec.hub.usage")
CONTAINER, SESSION = "container", "session"
SessionHook = Callable[["Session"], Coroutine[Any, Any, None]]


def month_of(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The calendar month (UTC) that holds `now`: the billing period."""
    now = (now or utcnow()).astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


# -- intervals -------------------------------------------------------------------


async def start(
    db: Database, user_id: str, meter: str, subject: str, at: datetime | None = None
) -> None:
    at = at or utcnow()
    async with db.session() as s:
        s.add(
            UsageRecord(user_id=user_id, meter=meter, subject=subject, started_at=at, checked_at=at)
        )
        await s.commit()


async def end(db: Database, subject: str, at: datetime | None = None) -> None:
    """Close the open intervals of a container or session."""
    at = at or utcnow()
    async with db.session() as s:
        await s.execute(
            update(UsageRecord)
            .where(UsageRecord.subject == subject, UsageRecord.ended_at.is_(None))
            .values(ended_at=at, checked_at=at)
        )
        await s.commit()


async def last_heartbeat(db: Database, subject: str) -> datetime | None:
    async with db.session() as s:
        return await s.scalar(
            select(func.max(UsageRecord.checked_at)).where(
                UsageRecord.subject == subject, UsageRecord.ended_at.is_(None)
            )
        )


def _container_running() -> Any:
    return select(Container.id).where(Container.status == "running").scalar_subquery()


def _session_live() -> Any:
    return select(TerminalSession.id).where(TerminalSession.status == "live").scalar_subquery()


async def heartbeat(
    db: Database, live_sessions: Collection[str], at: datetime | None = None
) -> None:
    """Mark the open intervals whose subject is still running as counted up to now."""
    async with db.session() as s:
        await s.execute(
            update(UsageRecord)
            .where(
                UsageRecord.ended_at.is_(None),
                ((UsageRecord.meter == CONTAINER) & UsageRecord.subject.in_(_container_running()))
                | ((UsageRecord.meter == SESSION) & UsageRecord.subject.in_(list(live_sessions))),
            )
            .values(checked_at=at or utcnow())
        )
        await s.commit()


async def sweep(db: Database, live_sessions: Collection[str], older_than: datetime) -> None:
    """Close, at their last heartbeat, intervals whose subject ended unseen: a session
    of an earlier process that was never taken up again, a container whose record was
    closed without its end being metered. Ends that were seen are closed exactly by
    `end`; the age bound keeps the sweep from racing them."""
    async with db.session() as s:
        await s.execute(
            update(UsageRecord)
            .where(
                UsageRecord.ended_at.is_(None),
                UsageRecord.checked_at < older_than,
                (
                    (UsageRecord.meter == CONTAINER)
                    & UsageRecord.subject.not_in(_container_running())
                )
                | (
                    (UsageRecord.meter == SESSION)
                    & UsageRecord.subject.not_in(list(live_sessions))
                    & UsageRecord.subject.not_in(_session_live())
                ),
            )
            .values(ended_at=UsageRecord.checked_at)
        )
        await s.commit()


async def ended_in_docker(engine: Engine, docker_id: str, since: datetime) -> datetime | None:
    """When Docker says a container died (from its event log), if it still knows."""
    api = await engine.api()
    until = utcnow()

    def read() -> float | None:
        events = api.events(
            since=since.timestamp() - 1,
            until=until.timestamp(),
            filters={"container": docker_id, "event": ["die", "destroy"]},
            decode=True,
        )
        times = [e.get("timeNano", 0) / 1e9 or float(e.get("time", 0)) for e in events]
        return min(times) if times else None

    try:
        found = await engine.call(read)
    except Exception as exc:
        log.warning("no Docker events for %s: %r", docker_id[:12], exc)
        return None
    return None if found is None else datetime.fromtimestamp(found, UTC)


# -- totals ---------------------------------------------------------------------------


async def seconds(
    db: Database,
    user_id: str,
    meter: str,
    period_start: datetime,
    period_end: datetime,
    now: datetime | None = None,
) -> float:
    now = now or utcnow()
    async with db.session() as s:
        rows = await s.execute(
            select(UsageRecord.started_at, UsageRecord.ended_at).where(
                UsageRecord.user_id == user_id,
                UsageRecord.meter == meter,
                UsageRecord.started_at < period_end,
                (UsageRecord.ended_at.is_(None)) | (UsageRecord.ended_at > period_start),
            )
        )
        total = 0.0
        for started, ended in rows:
            a = max(started, period_start)
            b = min(ended or now, period_end, now)
            total += max((b - a).total_seconds(), 0.0)
    return total


async def totals(
    db: Database, user_id: str, period_start: datetime, period_end: datetime
) -> dict[str, int]:
    now = utcnow()
    containers = await seconds(db, user_id, CONTAINER, period_start, period_end, now)
    sessions = await seconds(db, user_id, SESSION, period_start, period_end, now)
    async with db.session() as s:
        recorded = await s.scalar(
            select(func.coalesce(func.sum(TerminalSession.recording_bytes), 0)).where(
                TerminalSession.user_id == user_id,
                TerminalSession.started_at >= period_start,
                TerminalSession.started_at < period_end,
            )
        )
        running = await s.scalar(
            select(func.count(Container.id)).where(
                Container.user_id == user_id, Container.status == "running"
            )
        )
        agents = await s.scalar(
            select(func.count(Agent.id)).where(Agent.user_id == user_id, Agent.deleted_at.is_(None))
        )
    return {
        "container_seconds": round(containers),
        "session_seconds": round(sessions),
        "recording_bytes": int(recorded or 0),
        "containers_running": int(running or 0),
        "agents": int(agents or 0),
    }


# -- the running hub's part -------------------------------------------------------------


class SessionMeter:
    """The broker's start and end callbacks for terminal sessions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def started(self, session: Session) -> None:
        try:
            # Now, not the session's own start: a session adopted again after a restart
            # was already counted up to its last heartbeat.
            await start(self.db, session.user_id, SESSION, session.id)
        except Exception:
            log.exception("could not meter the start of %s", session.id)

    async def ended(self, session: Session) -> None:
        try:
            await end(self.db, session.id, session.ended_at)
        except Exception:
            log.exception("could not meter the end of %s", session.id)


class Heartbeat:
    """Every `interval` seconds: heartbeat the running intervals, sweep unseen ends."""

    def __init__(
        self,
        db: Database,
        interval: float,
        live_sessions: Callable[[], Collection[str]],
        settled: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.interval = interval
        self.live_sessions = live_sessions
        # Waited for before the first beat: the container reconcile after a restart must
        # close what vanished before anything is counted as still running.
        self.settled = settled
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def beat(self) -> None:
        now = utcnow()
        live = list(self.live_sessions())
        await heartbeat(self.db, live, now)
        await sweep(self.db, live, now - timedelta(seconds=3 * self.interval + 5))

    async def _run(self) -> None:
        if self.settled is not None:
            await self.settled()
        while True:
            try:
                await self.beat()
            except Exception as exc:
                log.warning("usage heartbeat failed: %r", exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # A clean stop: what is still running is counted up to now.
        with contextlib.suppress(Exception):
            await heartbeat(self.db, list(self.live_sessions()))
