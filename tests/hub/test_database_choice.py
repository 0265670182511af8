"""The test harness itself: with REXEC_TEST_DATABASE=postgres every hub process a test
starts keeps its data in a PostgreSQL database of its own, not in SQLite; a hub
restarted on the same data directory finds the same database."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import sqlalchemy as sa

from hub.db.models import User
from tests.support import Api, Hub, hubs_use_postgres


async def test_hub_processes_use_the_database_of_this_run(tmp_path: Path) -> None:
    hub = await Hub(tmp_path / "hub").start()
    try:
        async with aiohttp.ClientSession() as http:
            await Api(http, hub.url).sign_up("chosen@example.com")
    finally:
        hub.kill()
    if hubs_use_postgres():
        assert hub.database_url.startswith("postgresql+asyncpg://")
        assert not (hub.data_dir / "rexec.db").exists()
    else:
        assert (hub.data_dir / "rexec.db").exists()
    again = Hub(hub.data_dir)
    await again.start()
    try:
        assert again.database_url == hub.database_url
        from hub.db.engine import Database

        db = Database(again.database_url)
        try:
            async with db.session() as s:
                emails = (await s.execute(sa.select(User.email))).scalars().all()
        finally:
            await db.close()
        assert emails == ["chosen@example.com"]
    finally:
        again.kill()
