"""Fixtures: databases (SQLite and a real PostgreSQL), an in-process hub on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hub.app import create_app
from hub.settings import HubSettings
from tests.support import ROOT, Api

_pg_base: str | None = None


def postgres_base() -> str:
    """URL of the test PostgreSQL server, started by scripts/services.sh if needed."""
    global _pg_base
    if _pg_base is None:
        url = os.environ.get("REXEC_TEST_POSTGRES_URL")
        if not url:
            try:
                url = subprocess.run(
                    [str(ROOT / "scripts" / "services.sh"), "postgres"],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=120,
                ).stdout.strip()
            except (subprocess.CalledProcessError, OSError) as exc:
                if os.environ.get("CI"):
                    raise
                pytest.skip(f"PostgreSQL is not available here: {exc}")
        _pg_base = url
    return _pg_base


async def _admin(sql: str) -> None:
    import asyncpg

    base = postgres_base().replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each storage test runs on SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'rexec.db'}"
        return
    name = f"rexec_test_{secrets.token_hex(6)}"
    await _admin(f'CREATE DATABASE "{name}"')
    base = postgres_base()
    yield base.rsplit("/", 1)[0] + "/" + name
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> HubSettings:
    return HubSettings(data_dir=tmp_path / "hub", database_url=database_url, port=0, ssh_port=0)


@pytest.fixture
async def hub_server(settings: HubSettings) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(hub_server: TestServer, http: aiohttp.ClientSession) -> Api:
    return Api(http, str(hub_server.make_url("")).rstrip("/"))
