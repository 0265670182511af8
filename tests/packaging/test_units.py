"""The systemd units verify, install.sh is shellcheck-clean, and sd_notify really works."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from common.sdnotify import Notifier
from tests.e2e.conftest import register_agent
from tests.support import BIN, ROOT, Api, Hub, Proc, wait_for


@pytest.mark.parametrize("unit", ["rexec-agent.service", "rexec-hub.service"])
def test_unit_passes_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    text = (ROOT / "systemd" / unit).read_text()
    # verify wants the ExecStart binary to exist: point it at this checkout's.
    program = "rexec-agent" if "agent" in unit else "rexec-hub"
    installed = f"/opt/{program}/bin/{program}"
    assert installed in text
    (tmp_path / unit).write_text(text.replace(installed, str(BIN / program)))
    out = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Unknown" not in out.stderr and "ignoring" not in out.stderr, out.stderr
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=always" in text


def test_install_sh_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    out = subprocess.run(
        ["shellcheck", "-s", "sh", str(ROOT / "install.sh")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout


def test_notifier_without_socket_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled and not n.send("READY=1")
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket, into: list[str]) -> list[str]:
    while True:
        try:
            into += sock.recv(4096).decode().split("\n")
        except BlockingIOError:
            return into


async def test_agent_notifies_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    hub = await Hub(tmp_path / "hub").start()
    sock = _listen(tmp_path / "notify.sock")
    got: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            api = await Api(http, hub.url).sign_up("owner@example.com")
            config = tmp_path / "agent" / "agent.toml"
            agent_id = await register_agent(hub, api, config)
            proc = Proc(
                [str(BIN / "rexec-agent"), "run", "--config", str(config)],
                env={
                    "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                    "WATCHDOG_USEC": "400000",  # a ping every 0.2 s
                    "WATCHDOG_PID": "",
                },
            )
            proc.drain_in_background()
            try:
                await wait_for(lambda: "READY=1" in _drain(sock, got), 15, what="READY=1")

                async def online() -> bool:
                    _, body = await api.call("GET", f"/api/agents/{agent_id}")
                    return body["status"] == "online"

                # READY=1 comes once the agent is connected: the hub already sees it.
                assert await online()
                assert any(line.startswith("STATUS=connected") for line in got)
                await wait_for(
                    lambda: _drain(sock, got).count("WATCHDOG=1") >= 3, 5, what="watchdog"
                )
                assert "STOPPING=1" not in got
                proc.popen.send_signal(signal.SIGTERM)
                assert await proc.wait_exit(15) == 0
                assert "STOPPING=1" in _drain(sock, got)
                assert got.count("READY=1") == 1
            finally:
                proc.kill()
    finally:
        sock.close()
        hub.kill()


async def test_hub_notifies_ready_and_stopping(tmp_path: Path) -> None:
    sock = _listen(tmp_path / "notify.sock")
    got: list[str] = []
    hub = Hub(tmp_path / "hub", env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        await hub.start()
        await wait_for(lambda: "READY=1" in _drain(sock, got), 10, what="READY=1")
        assert hub.proc is not None
        hub.proc.popen.send_signal(signal.SIGTERM)
        started = time.monotonic()
        await hub.proc.wait_exit(30)
        assert "STOPPING=1" in _drain(sock, got), got
        assert time.monotonic() - started < 30
    finally:
        sock.close()
        hub.kill()
        os.environ.pop("NOTIFY_SOCKET", None)
