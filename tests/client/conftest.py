"""The client against real hubs: `rexec-hub` processes with the Docker engine for
containers, `rexec-agent` processes for agents, and the `rexec` command run as a real
process with its own XDG config directory."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from client.sdk import AsyncClient
from tests.containers.conftest import HubFactory, engine, make_hub
from tests.e2e.conftest import register_agent, start_agent
from tests.support import BIN, Api, Hub, Proc

EMAIL = "alice@example.com"
PASSWORD = "correct horse 1"

__all__ = ["EMAIL", "PASSWORD", "Cli", "Result", "engine", "make_hub"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class Cli:
    """`rexec` as a subprocess, with a private config directory and a default hub."""

    def __init__(self, config_home: Path, hub: str) -> None:
        self.config_home = config_home
        self.hub = hub

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REXEC_")}
        env.update(XDG_CONFIG_HOME=str(self.config_home), REXEC_HUB=self.hub, **extra)
        return env

    async def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "rexec"),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self.env(), **(env or {})},
        )
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else b""), 60
        )
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        result = await self(*args, stdin=stdin)
        assert result.code == 0, f"rexec {' '.join(args)}: {result}"
        return result.out

    async def login(self, email: str = EMAIL, password: str = PASSWORD) -> None:
        await self.ok("login", "--email", email, "--password-stdin", stdin=password + "\n")

    @property
    def credentials(self) -> Path:
        return self.config_home / "rexec" / "credentials.json"


def assert_one_line_error(result: Result, *needles: str) -> None:
    """A failure reported as exactly one line on stderr, no traceback."""
    assert result.code != 0, str(result)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, str(result)
    assert lines[0].startswith("rexec: "), str(result)
    assert "Traceback" not in result.err, str(result)
    for needle in needles:
        assert needle in lines[0], str(result)


@pytest.fixture
async def chub(make_hub: HubFactory) -> Hub:
    return await make_hub()


@pytest.fixture
async def alice(chub: Hub, http: aiohttp.ClientSession) -> Api:
    return await Api(http, chub.url).sign_up(EMAIL, PASSWORD)


@pytest.fixture
def cli(chub: Hub, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "config", chub.url)


@pytest.fixture
async def signed_in(cli: Cli, alice: Api) -> Cli:
    await cli.login()
    return cli


@pytest.fixture
async def sdk(chub: Hub, alice: Api) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(chub.url) as client:
        await client.login(EMAIL, PASSWORD)
        yield client


@pytest.fixture
async def container(alice: Api) -> str:
    body = await alice.ok("POST", "/api/containers", {"name": "sandbox"}, 201)
    return str(body["id"])


@dataclass
class Agent:
    id: str
    proc: Proc


@pytest.fixture
async def agent(chub: Hub, alice: Api, tmp_path: Path) -> AsyncIterator[Agent]:
    config = tmp_path / "agent" / "agent.toml"
    agent_id = await register_agent(chub, alice, config)
    proc = await start_agent(alice, agent_id, config)
    yield Agent(agent_id, proc)
    proc.kill()


def words(text: str) -> Sequence[str]:
    return text.split()
