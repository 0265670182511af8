"""Real `rexec-hub` and `rexec-agent` processes talking over 127.0.0.1."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.support import BIN, Api, Hub, Proc, wait_for


@dataclass
class RunningAgent:
    id: str
    config: Path
    proc: Proc


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    h = await Hub(tmp_path / "hub").start()
    yield h
    h.kill()


@pytest.fixture
async def owner(hub: Hub) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield await Api(http, hub.url).sign_up("owner@example.com")


async def register_agent(hub: Hub, api: Api, config: Path) -> str:
    token = (await api.ok("POST", "/api/agents/tokens", {"name": "box"}, 201))["token"]
    done = await asyncio.to_thread(
        subprocess.run,
        [
            str(BIN / "rexec-agent"),
            "register",
            "--hub",
            hub.url,
            "--token",
            token,
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()[1]


async def start_agent(api: Api, agent_id: str, config: Path) -> Proc:
    proc = Proc([str(BIN / "rexec-agent"), "run", "--config", str(config)])
    proc.drain_in_background()

    async def online() -> bool:
        code, body = await api.call("GET", f"/api/agents/{agent_id}")
        return code == 200 and body["status"] == "online"

    await wait_for(online, 15, what="agent online")
    return proc


@pytest.fixture
async def agent(hub: Hub, owner: Api, tmp_path: Path) -> AsyncIterator[RunningAgent]:
    config = tmp_path / "agent" / "agent.toml"
    agent_id = await register_agent(hub, owner, config)
    proc = await start_agent(owner, agent_id, config)
    yield RunningAgent(agent_id, config, proc)
    proc.kill()
