"""install.sh for real: a Debian container (host network) against a live hub on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect

from tests.support import ROOT, Api, Hub, wait_for

IMAGE = "rexec/debian:12"
pytestmark = [pytest.mark.timeout(900), pytest.mark.backend_independent]


def _docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def container() -> object:
    if shutil.which("docker") is None or _docker("version").returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("no Docker engine: scripts/test.sh starts one")
        pytest.skip("no Docker engine")
    if _docker("image", "inspect", IMAGE).returncode != 0:
        built = subprocess.run(
            [str(ROOT / "scripts" / "base-image.sh"), "debian"], capture_output=True, text=True
        )
        assert built.returncode == 0, built.stderr
    # HTTPS from inside needs the host's CA certificates (docs: MACHINE.md).
    ca = "/etc/ssl/certs/ca-certificates.crt"
    run = _docker(
        *("run", "-d", "--init", "--network", "host", "--user", "0"),
        *("-v", f"{ca}:/host-ca.crt:ro", "-e", "PIP_CERT=/host-ca.crt"),
        *(IMAGE, "sleep", "infinity"),
    )
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    yield cid
    _docker("rm", "-f", cid)  # by id


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    h = await Hub(tmp_path / "hub").start()
    yield h
    h.kill()


async def sh(cid: str, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_docker, "exec", cid, "sh", "-c", script, timeout=timeout)


async def test_install_upgrade_uninstall_in_a_debian_container(hub: Hub, container: str) -> None:
    cid = container
    async with aiohttp.ClientSession() as http:
        api = await Api(http, hub.url).sign_up("owner@example.com")
        created = await api.ok("POST", "/api/agents/tokens", {"name": "container"}, 201)
        command = created["install_command"] + " --no-systemd"
        assert command.startswith(f"curl -fsSL {hub.url}/install.sh | sh -s -- --token ")

        # A bad token: a clear error, and nothing left behind.
        bad = await sh(cid, command.replace(created["token"], "rxa_not_a_token"))
        assert bad.returncode != 0
        assert "registration refused" in bad.stderr, bad.stderr
        assert "removing the partial install" in bad.stderr
        assert (await sh(cid, "test ! -e /opt/rexec-agent && test ! -e /etc/rexec")).returncode == 0
        assert (await api.ok("GET", "/api/agents"))["agents"] == []

        first = await sh(cid, command)
        assert first.returncode == 0, first.stdout + first.stderr
        for line in ("==> creating a virtual environment", "==> registering with", "==> done"):
            assert line in first.stdout, first.stdout
        assert created["token"] not in first.stdout + first.stderr.replace(command, "")

        async def online() -> list[dict[str, object]]:
            agents = (await api.ok("GET", "/api/agents"))["agents"]
            return [a for a in agents if a["status"] == "online"]

        agents = await wait_for(online, 20, what="agent online")
        agent_id = agents[0]["id"]
        hostname = (await sh(cid, "hostname")).stdout.strip()
        result = await api.ok("POST", f"/api/agents/{agent_id}/exec", {"cmd": "hostname; id -u"})
        assert result["stdout"] == f"{hostname}\n0\n"
        # And a terminal through the hub, as a person would open one.
        assert api.token
        url = f"ws://127.0.0.1:{hub.port}/ws/terminal/{agent_id}?token={api.token}"
        seen = b""
        async with connect(url, compression=None) as ws:
            await ws.send(b"echo host=$(hostname)\n")
            async with asyncio.timeout(20):
                while f"host={hostname}\r\n".encode() not in seen:
                    msg = await ws.recv()
                    if isinstance(msg, bytes):
                        seen += msg
        modes = await sh(
            cid, "stat -c '%a %n' /etc/rexec /etc/rexec/agent.toml /etc/rexec/agent.key"
        )
        assert modes.stdout.split("\n")[:3] == [
            "700 /etc/rexec",
            "600 /etc/rexec/agent.toml",
            "600 /etc/rexec/agent.key",
        ]
        status = await sh(cid, "/opt/rexec-agent/bin/rexec-agent status")
        assert "connection: connected" in status.stdout, status.stdout

        # Re-run: an upgrade in place, same identity, back online.
        again = await sh(cid, f"curl -fsSL {hub.url}/install.sh | sh -s -- --no-systemd")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "keeping the identity" in again.stdout
        await wait_for(online, 20, what="agent online after the upgrade")
        listed = (await api.ok("GET", "/api/agents"))["agents"]
        assert [a["id"] for a in listed] == [agent_id]

        # Uninstall: the agent stops (the hub sees it offline) and nothing is left.
        gone = await sh(cid, f"curl -fsSL {hub.url}/install.sh | sh -s -- --uninstall")
        assert gone.returncode == 0, gone.stdout + gone.stderr
        left = await sh(
            cid,
            "ls -d /opt/rexec-agent /etc/rexec /var/log/rexec-agent.log /run/rexec-agent.pid"
            " /var/lib/rexec-agent 2>/dev/null; pgrep -f 'rexec-agen[t] run' || true",
        )
        assert left.stdout.strip() == ""
        one = await api.ok("GET", f"/api/agents/{agent_id}")
        assert one["status"] == "offline"
