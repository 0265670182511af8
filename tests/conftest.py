"""Fixtures: databases (SQLite and a real PostgreSQL), an in-process hub on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hub.app import create_app
from hub.settings import HubSettings
from tests.support import (
    CREATED_DATABASES,
    STARTED_HUB_DIRS,
    Api,
    create_postgres_database,
    database_backends,
    drop_postgres_databases,
    hub_instances_running,
    hubs_use_postgres,
    one_node_cluster,
    remove_dead_pools,
    remove_hub_leftovers,
    run_coroutine_in_thread,
)

# Agents started by tests run a plain POSIX shell, not the login shell of the user
# running the tests: that one reads the user's dotfiles (here ~/.bashrc runs
# `pyenv init`, which waits up to a minute on a lock file that a killed shell leaves).
os.environ.setdefault("REXEC_AGENT_SHELL", "/bin/sh")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass (REXEC_TEST_DATABASE=postgres) leaves out the tests whose
    outcome cannot depend on the database: the SQLite pass ran them."""
    if not hubs_use_postgres():
        return
    keep = [i for i in items if i.get_closest_marker("backend_independent") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under the test command (REXEC_TEST_NO_SKIP=1, set by scripts/test.sh) a skip is a
    failure: the command installs and starts everything the tests need, so a test that
    skips there means a missing install step, not a missing feature of this machine."""
    outcome = yield
    report = outcome.get_result()
    strict = os.environ.get("REXEC_TEST_NO_SKIP") == "1"
    if strict and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under scripts/test.sh, which provides it: {report.longrepr}"


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """PostgreSQL databases made for a test's hubs go when the test ends."""
    yield
    if CREATED_DATABASES:
        run_coroutine_in_thread(drop_postgres_databases())


@pytest.fixture(params=database_backends())
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on SQLite and on a fresh PostgreSQL database (on the one
    REXEC_TEST_DATABASE names when it is set)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'rexec.db'}"
    return await create_postgres_database(f"rexec_test_{secrets.token_hex(6)}")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> HubSettings:
    cluster: dict[str, str] = {}
    if hubs_use_postgres():  # the PostgreSQL pass: on Redis too (tests/support.py)
        env = one_node_cluster(tmp_path / "hub")
        cluster = {
            "redis_url": env["REXEC_REDIS_URL"],
            "redis_prefix": env["REXEC_REDIS_PREFIX"],
            "jwt_secret": env["REXEC_JWT_SECRET"],
        }
    return HubSettings(
        data_dir=tmp_path / "hub", database_url=database_url, port=0, ssh_port=0, **cluster
    )


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


@pytest.fixture(scope="session", autouse=True)
def _docker_left_by_killed_hubs() -> Iterator[None]:
    """Hubs the tests kill (SIGKILL) cannot remove their containers and networks, and an
    engine has address pools for only a few dozen networks: before the run, the pools of
    hubs no longer running; after it, everything of the hubs this run started."""
    try:
        import docker

        engine = docker.from_env(timeout=10)
        engine.ping()
    except Exception:  # no engine here: nothing to clean
        yield
        return
    with contextlib.suppress(Exception):
        remove_dead_pools(engine)
    yield
    live = hub_instances_running()
    for data_dir in STARTED_HUB_DIRS:
        path = data_dir / "instance_id"
        if path.exists() and path.read_text().strip() not in live:
            with contextlib.suppress(Exception):
                remove_hub_leftovers(engine, data_dir)
    with contextlib.suppress(Exception):
        remove_dead_pools(engine)
    engine.close()
