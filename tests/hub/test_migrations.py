"""Alembic migrations on SQLite and PostgreSQL: an empty database reaches head with the
schema the models describe; a database at the previous release's revision, with rows
in every table, reaches head step by step and comes back down with its rows kept.

Head and the revision list come from Alembic's script directory, so a new revision is
covered without touching this file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from hub.db.engine import Database, alembic_config
from hub.db.models import Base

PREVIOUS_RELEASE = "0005"  # the schema the last release shipped
WHEN = datetime(2026, 11, 20, 8, 30, 15, tzinfo=UTC)


def revisions() -> list[str]:
    """Every revision, oldest first, from the script directory."""
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _current(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def _step(db: Database, action: str, target: str) -> None:
    def run(conn: sa.Connection) -> None:
        getattr(command, action)(alembic_config(conn), target)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


def _value(table: sa.Table, column: sa.Column[Any], number: int) -> Any:
    """A value that fits the column's type (and length)."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return 7 + number
    if isinstance(kind, sa.Float | sa.Numeric):
        return 1.5
    if isinstance(kind, sa.DateTime):
        return WHEN
    if isinstance(kind, sa.JSON):
        return {"kept": [1, "two"]}
    if isinstance(kind, sa.LargeBinary):
        return b"\x00kept"
    text = f"{table.name[:12]}-{column.name[:12]}-{number}"
    length = getattr(kind, "length", None)
    return text[-length:] if length else text


def _seed(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    """One row in every table at this revision, foreign keys pointing at the rows made
    for the tables they reference; returns the rows written."""
    meta = sa.MetaData()
    meta.reflect(conn)
    rows: dict[str, dict[str, Any]] = {}
    for number, table in enumerate(meta.sorted_tables):
        if table.name == "alembic_version":
            continue
        row: dict[str, Any] = {}
        for column in table.columns:
            fks = list(column.foreign_keys)
            if fks:
                target = fks[0].column
                row[column.name] = rows[target.table.name][target.name]
            elif column.primary_key and isinstance(column.type, sa.Integer):
                continue  # autoincrement: the database picks it
            else:
                row[column.name] = _value(table, column, number)
        result = conn.execute(table.insert().values(row))
        for column, key in zip(
            table.primary_key.columns, result.inserted_primary_key or (), strict=False
        ):
            row[column.name] = key
        rows[table.name] = row
    return rows


def _same(stored: Any, written: Any) -> bool:
    if isinstance(written, datetime) and isinstance(stored, datetime):
        stored = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
        return stored == written
    if isinstance(written, float):
        return abs(float(stored) - written) < 1e-9
    return bool(stored == written)


def _check_kept(conn: sa.Connection, rows: dict[str, dict[str, Any]]) -> None:
    """Every seeded row is still there with the values it had, in the columns that
    still exist (a migration may add columns, never lose what was written)."""
    meta = sa.MetaData()
    meta.reflect(conn)
    for name, written in rows.items():
        assert name in meta.tables, f"table {name} was dropped"
        table = meta.tables[name]
        lost = set(written) - set(table.columns.keys())
        assert not lost, f"{name} lost columns {lost}"
        where = [table.c[c.name] == written[c.name] for c in table.primary_key.columns]
        found = conn.execute(sa.select(table).where(*where)).mappings().all()
        assert len(found) == 1, f"{name}: row {written} is gone"
        for column, value in written.items():
            assert _same(found[0][column], value), (name, column, found[0][column], value)


async def test_an_empty_database_reaches_head_with_the_models_schema(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_current) == revisions()[-1]
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        assert diff == [], f"migrations and models disagree: {diff}"
    finally:
        await db.close()


async def test_the_previous_release_upgrades_and_downgrades_with_its_rows(
    database_url: str,
) -> None:
    order = revisions()
    assert PREVIOUS_RELEASE in order
    newer = order[order.index(PREVIOUS_RELEASE) + 1 :]
    db = Database(database_url)
    try:
        await _step(db, "upgrade", PREVIOUS_RELEASE)
        async with db.engine.begin() as conn:
            rows = await conn.run_sync(_seed)
        assert len(rows) >= 10, sorted(rows)  # users, agents, sessions, ... all seeded
        # Up one revision at a time, the rows checked after each step.
        for revision in newer:
            await _step(db, "upgrade", revision)
            async with db.engine.connect() as conn:
                assert await conn.run_sync(_current) == revision
                await conn.run_sync(_check_kept, rows)
        # The hub's own start-up path is a no-op now.
        await db.migrate()
        # And back down to the previous release, one revision at a time.
        for revision in reversed([PREVIOUS_RELEASE, *newer[:-1]]):
            await _step(db, "downgrade", revision)
            async with db.engine.connect() as conn:
                assert await conn.run_sync(_current) == revision
                await conn.run_sync(_check_kept, rows)
        # Then up again: a downgrade leaves a schema the upgrade accepts.
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_current) == order[-1]
            await conn.run_sync(_check_kept, rows)
    finally:
        await db.close()


async def test_every_revision_downgrades_to_an_empty_database(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        await _step(db, "downgrade", "base")
        async with db.engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert set(names) <= {"alembic_version"}, names
    finally:
        await db.close()
