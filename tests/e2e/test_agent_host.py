"""The agent on a host: status, structured logs without secrets, SIGTERM, idle CPU."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import RunningAgent
from tests.e2e.test_terminal import read_until, ws_url
from tests.support import BIN, Api, Hub, wait_for


def status_of(config: Path) -> dict[str, Any]:
    out = subprocess.run(
        [str(BIN / "rexec-agent"), "status", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_status_shows_hub_state_sessions_and_last_error(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    st = await wait_for(lambda: status_of(agent.config)["state"] == "connected", 10)
    st = status_of(agent.config)
    assert st["hub"] == hub.url and st["agent_id"] == agent.id and st["sessions"] == 0
    assert owner.token
    async with connect(ws_url(hub, agent.id, owner.token), compression=None) as ws:
        await ws.recv()
        await wait_for(lambda: status_of(agent.config)["sessions"] == 1, 10, what="1 session")
        text = subprocess.run(
            [str(BIN / "rexec-agent"), "status", "--config", str(agent.config)],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert f"hub:        {hub.url}" in text and "connection: connected" in text
        assert "sessions:   1" in text
        hub.kill()  # SIGKILL: the link just dies
        try:
            await ws.recv()
            await ws.recv()
        except ConnectionClosed:
            pass

    def down() -> bool:
        st = status_of(agent.config)
        return st["state"] in ("disconnected", "connecting") and bool(st["last_error"])

    await wait_for(down, 15, what="last error after the hub died")


async def test_logs_are_structured_and_hold_no_secrets(
    hub: Hub, owner: Api, tmp_path: Path
) -> None:
    token = (await owner.ok("POST", "/api/agents/tokens", {"name": "box"}, 201))["token"]
    config = tmp_path / "agent" / "agent.toml"
    reg = subprocess.run(
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
    proc = subprocess.Popen(
        [str(BIN / "rexec-agent"), "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        agent_id = reg.stdout.split()[1]

        async def online() -> bool:
            return (await owner.ok("GET", f"/api/agents/{agent_id}"))["status"] == "online"

        await wait_for(online, 15)
        await owner.ok("POST", f"/api/agents/{agent_id}/exec", {"cmd": "true"})
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=15)
    everything = reg.stdout + reg.stderr + out
    key_pem = (config.parent / "agent.key").read_text()
    key_body = "".join(key_pem.splitlines()[1:-1])
    assert token not in everything and key_body not in everything
    assert "Bearer" not in everything and "eyJ" not in everything  # no proof JWT either
    lines = [line for line in out.splitlines() if line]
    assert lines, out
    for line in lines:
        assert line.startswith("ts=") and " level=" in line and " msg=" in line, line
    assert any('msg="connected to' in line for line in lines)


async def test_sigterm_tells_the_hub_at_once_and_ends_sessions(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    async with connect(ws_url(hub, agent.id, owner.token), compression=None) as ws:
        first = json.loads(await ws.recv())
        await ws.send(b"echo ready$((1+1))\n")
        await read_until(ws, b"ready2")
        started = time.monotonic()
        agent.proc.popen.send_signal(signal.SIGTERM)
        assert await agent.proc.wait_exit(10) == 0
        body = await owner.ok("GET", f"/api/agents/{agent.id}")
        assert body["status"] == "offline"  # at once, no timeout involved
        assert time.monotonic() - started < 5
        with_end = False
        try:
            async with asyncio.timeout(10):
                async for _msg in ws:
                    pass
            with_end = True
        except ConnectionClosed:
            with_end = True
        assert with_end and ws.close_code is not None

    async def ended() -> bool:
        code, s = await owner.call("GET", f"/api/sessions/{first['id']}")
        return code == 404 or (isinstance(s, dict) and s.get("status") != "active")

    await wait_for(ended, 10, what="session ended")


async def test_connected_idle_agent_uses_no_cpu(owner: Api, agent: RunningAgent) -> None:
    await wait_for(lambda: status_of(agent.config)["state"] == "connected", 10)
    await asyncio.sleep(1)  # let the first metrics sample pass
    before = cpu_seconds(agent.proc.pid)
    start = time.monotonic()
    await wait_for(lambda: time.monotonic() - start >= 3, 5, what="3 s idle")
    used = cpu_seconds(agent.proc.pid) - before
    assert used < 0.1, f"idle agent used {used:.3f} s of CPU in 3 s"
