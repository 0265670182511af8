"""Acceptance: the agent's life against a real hub: restarts, deletion, tokens."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from websockets.asyncio.client import connect

from hub.db.models import AgentToken
from tests.e2e.conftest import RunningAgent, register_agent, start_agent
from tests.support import BIN, Api, Hub, assert_error, wait_for


async def test_agent_listing_shows_facts_and_metrics(owner: Api, agent: RunningAgent) -> None:
    listed = (await owner.ok("GET", "/api/agents"))["agents"]
    assert [a["id"] for a in listed] == [agent.id]
    one = listed[0]
    assert one["status"] == "online" and one["name"] == "box"
    assert one["hostname"] and one["os"].startswith("linux") and one["arch"] and one["version"]

    async def has_metrics() -> bool:
        metrics = (await owner.ok("GET", f"/api/agents/{agent.id}"))["metrics"]
        return "cpu_percent" in metrics and metrics["memory_total"] > 0

    await wait_for(has_metrics, 10, what="metrics")


async def test_hub_killed_and_restarted_agent_comes_back(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    hub.kill()  # SIGKILL: no goodbye to the agent
    restarted = await Hub(hub.data_dir, port=hub.port).start()
    try:
        started = time.monotonic()

        async def online() -> bool:
            code, body = await owner.call("GET", f"/api/agents/{agent.id}")
            return code == 200 and body["status"] == "online"

        await wait_for(online, 5, what="agent back online within 5 s")
        assert time.monotonic() - started < 5
        result = await owner.ok("POST", f"/api/agents/{agent.id}/exec", {"cmd": "echo back"})
        assert result["stdout"] == "back\n"
    finally:
        restarted.kill()


async def test_deleted_agent_is_disconnected_and_refused(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    status, _ = await owner.call("DELETE", f"/api/agents/{agent.id}")
    assert status == 204
    code = await agent.proc.wait_exit(10)
    assert code != 0
    assert "deleted" in agent.proc.output()
    status, body = await owner.call("GET", f"/api/agents/{agent.id}")
    assert_error(status, body, 404)
    # Started again, it is refused at once and says why, instead of retrying forever.
    again = subprocess.run(
        [str(BIN / "rexec-agent"), "run", "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert again.returncode != 0
    assert "refused" in again.stderr and "deleted" in again.stderr


async def test_registration_token_single_use_and_expiry(
    hub: Hub, owner: Api, tmp_path: Path
) -> None:
    token = (await owner.ok("POST", "/api/agents/tokens", {}, 201))["token"]
    register = [str(BIN / "rexec-agent"), "register", "--hub", hub.url, "--token", token]
    first = subprocess.run(
        [*register, "--config", str(tmp_path / "a.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "a.toml").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "agent.key").stat().st_mode & 0o777 == 0o600
    spent = subprocess.run(
        [*register, "--config", str(tmp_path / "b.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert spent.returncode != 0 and "already used" in spent.stderr
    # An expired token: age one in the hub's database.
    answer = await owner.ok("POST", "/api/agents/tokens", {"expires_in": 60}, 201)
    past = datetime.now(UTC) - timedelta(minutes=5)
    await hub.execute(
        update(AgentToken).where(AgentToken.used_at.is_(None)).values(expires_at=past)
    )
    status, body = await Api(owner.http, owner.base).call(
        "POST",
        "/api/agents/register",
        {"token": answer["token"], "name": "x", "public_key": _pubkey()},
    )
    assert_error(status, body, 401, "invalid_token")


async def test_register_validation(owner: Api) -> None:
    token = (await owner.ok("POST", "/api/agents/tokens", {}, 201))["token"]
    anon = Api(owner.http, owner.base)
    status, body = await anon.call(
        "POST", "/api/agents/register", {"token": token, "name": "x", "public_key": "ssh-rsa nope"}
    )
    assert_error(status, body, 400, "invalid_request")
    assert body["error"]["details"]["field"] == "public_key"
    status, body = await anon.call("POST", "/api/agents/register", {"name": "x"})
    assert_error(status, body, 400, "invalid_request")
    # The failed attempts did not spend the token.
    ok = await anon.ok(
        "POST", "/api/agents/register", {"token": token, "name": "x", "public_key": _pubkey()}, 201
    )
    assert ok["id"].startswith("agt_")


async def test_offline_agent_conflicts(hub: Hub, owner: Api, tmp_path: Path) -> None:
    agent_id = await register_agent(hub, owner, tmp_path / "agent.toml")
    status, body = await owner.call("POST", f"/api/agents/{agent_id}/exec", {"cmd": "true"})
    assert_error(status, body, 409, "agent_offline")
    proc = await start_agent(owner, agent_id, tmp_path / "agent.toml")
    try:
        await owner.ok("POST", f"/api/agents/{agent_id}/exec", {"cmd": "true"})
        proc.kill(15)  # SIGTERM: a clean stop
        assert await proc.wait_exit(10) == 0

        async def offline() -> bool:
            return (await owner.ok("GET", f"/api/agents/{agent_id}"))["status"] == "offline"

        await wait_for(offline, 10, what="offline")
    finally:
        proc.kill()


def _pubkey() -> str:
    from common.agentauth import generate_key, public_openssh

    return public_openssh(generate_key())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_agent_stays_idle_while_its_hub_is_down(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    """A session streaming when the hub dies: the agent holds it without spinning."""
    assert owner.token
    url = f"ws://127.0.0.1:{hub.port}/ws/terminal/{agent.id}?token={owner.token}&command=yes"
    async with connect(url, compression=None) as ws:
        for _ in range(20):
            await ws.recv()
        hub.kill()

        async def noticed() -> bool:
            return "hub link down" in agent.proc.output()

        await wait_for(noticed, 10, what="the agent noticed")
        before = cpu_seconds(agent.proc.pid)
        await asyncio.sleep(2)  # measuring CPU over an interval is the test
        assert cpu_seconds(agent.proc.pid) - before < 0.2
    assert agent.proc.popen.poll() is None
