"""Several real hub processes on one PostgreSQL and one Redis (docs/cluster.md)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import register_agent, start_agent
from tests.support import Api, Hub, Proc, create_postgres_database, redis_url


@pytest.fixture
async def shared_env() -> AsyncIterator[dict[str, str]]:
    """What every hub of one test cluster shares: a fresh database, Redis, the secret."""
    # Dropped when the test ends (tests/conftest.py).
    database = await create_postgres_database(f"rexec_cluster_{secrets.token_hex(6)}")
    yield {
        "REXEC_DATABASE_URL": database,
        "REXEC_REDIS_URL": redis_url(),
        "REXEC_JWT_SECRET": secrets.token_urlsafe(32),
        "REXEC_INSTANCE_ID": f"cluster-{secrets.token_hex(4)}",
        "REXEC_REDIS_PREFIX": f"test-{secrets.token_hex(4)}",  # one namespace per test
        "REXEC_DOCKER_ENABLED": "false",
    }


@pytest.fixture
async def start_hub(
    tmp_path: Path, shared_env: dict[str, str]
) -> AsyncIterator[Callable[[str], Awaitable[Hub]]]:
    """Start hub processes of one cluster by name; all are killed at the end."""
    hubs: list[Hub] = []

    async def start(name: str) -> Hub:
        hub = await Hub(tmp_path / name, env=shared_env).start()
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        hub.kill()


def api_on(hub: Hub, signed_in: Api) -> Api:
    """The same signed-in user, talking to another hub."""
    return Api(signed_in.http, hub.url, signed_in.token)


async def agent_on(hub: Hub, api: Api, tmp_path: Path, *others: Hub) -> tuple[str, Proc]:
    """An agent registered through `hub` that knows the other hubs' URLs too."""
    config = tmp_path / "agent" / "agent.toml"
    agent_id = await register_agent(hub, api, config)
    if others:
        urls = ", ".join(f'"{h.url}"' for h in others)
        config.write_text(config.read_text() + f"hubs = [{urls}]\n")
    return agent_id, await start_agent(api, agent_id, config)


@dataclass
class Pair:
    """Hubs A and B of one cluster, a signed-in user, and an agent connected to A."""

    a: Hub
    b: Hub
    owner: Api
    agent_id: str
    agent: Proc


@pytest.fixture
async def pair(
    start_hub: Callable[[str], Awaitable[Hub]], http: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[Pair]:
    a, b = await start_hub("a"), await start_hub("b")
    owner = await Api(http, a.url).sign_up("owner@example.com")
    agent_id, agent = await agent_on(a, owner, tmp_path)
    yield Pair(a, b, owner, agent_id, agent)
    agent.kill()
