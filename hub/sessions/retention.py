"""Recordings are kept as long as their owner's plan says (`recording_retention_days`),
then deleted by a task that runs at start and every hour."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from hub.billing.plans import PlanBook
from hub.db.engine import Database
from hub.db.models import TerminalSession, User, utcnow
from hub.sessions.recorder import POS, recording_path
from hub.state import DB, SETTINGS

log = logging.getLogger("rexec.hub.retention")
INTERVAL = 3600.0


async def prune(db: Database, plans: PlanBook, directory: Path) -> int:
    """Delete the recordings of ended sessions older than their owner's plan allows."""
    now = utcnow()
    async with db.session() as s:
        rows = (
            await s.execute(
                select(TerminalSession.id, TerminalSession.ended_at, User.plan)
                .join(User, User.id == TerminalSession.user_id)
                .where(TerminalSession.status == "ended", TerminalSession.ended_at.is_not(None))
            )
        ).all()
    doomed: list[Path] = []
    for session_id, ended_at, plan_id in rows:
        days = plans.get(plan_id).recording_retention_days
        if days is not None and ended_at is not None and ended_at + timedelta(days=days) <= now:
            doomed.append(recording_path(directory, session_id))

    def delete() -> int:
        gone = 0
        for path in doomed:
            if path.exists():
                path.unlink()
                gone += 1
            with contextlib.suppress(FileNotFoundError):
                path.with_suffix(POS).unlink()
        return gone

    removed = await asyncio.to_thread(delete)
    if removed:
        log.info("deleted %d recordings past their retention", removed)
    return removed


async def retention_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    plans = PlanBook.from_settings(settings)

    async def loop() -> None:
        while True:
            try:
                await prune(app[DB], plans, settings.recordings)
            except Exception:
                log.exception("pruning recordings failed")
            await asyncio.sleep(INTERVAL)

    task = asyncio.get_running_loop().create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
