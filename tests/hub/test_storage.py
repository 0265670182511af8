"""Storage on SQLite and PostgreSQL: migrations, aware UTC times, foreign keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from hub.db.engine import Database, alembic_config
from hub.db.models import AgentToken, User


async def test_migrations_apply_twice_and_times_come_back_aware(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        await db.migrate()  # already at head: nothing to do, no error
        local = datetime(2026, 11, 23, 21, 30, tzinfo=timezone(timedelta(hours=1)))
        async with db.session() as s:
            s.add(User(id="usr_t", email="t@x.io", password_hash="x", created_at=local))
            await s.commit()
        async with db.session() as s:
            user = await s.scalar(select(User).where(User.id == "usr_t"))
        assert user is not None
        assert user.created_at.tzinfo is not None
        assert user.created_at == local
        assert user.created_at.astimezone(UTC).hour == 20
        async with db.engine.connect() as conn:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
    finally:
        await db.close()


async def test_foreign_keys_are_enforced_and_cascade(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        soon = datetime.now(UTC) + timedelta(hours=1)
        async with db.session() as s:
            s.add(AgentToken(id="atk_1", user_id="usr_nobody", token_hash="h", expires_at=soon))
            with pytest.raises(IntegrityError):
                await s.commit()
        async with db.session() as s:
            s.add(User(id="usr_a", email="a@x.io", password_hash="x"))
            await s.commit()
            s.add(AgentToken(id="atk_2", user_id="usr_a", token_hash="h2", expires_at=soon))
            await s.commit()
            await s.execute(text("DELETE FROM users WHERE id = 'usr_a'"))
            await s.commit()
            assert await s.scalar(select(AgentToken).where(AgentToken.id == "atk_2")) is None
    finally:
        await db.close()
