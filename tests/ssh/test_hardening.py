"""The gateway's transport (issue 16): ssh-audit (a third-party auditor) finds no
failure, and unauthenticated connections are throttled per source address (DHEat)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from typing import Any

from hub.ssh.gateway import ENCRYPTION_ALGS, KEX_ALGS, MAC_ALGS
from hub.ssh.throttle import BURST, MAX_PENDING
from tests.ssh.conftest import SshHub
from tests.support import BIN, wait_for


def _failures(report: Any) -> list[Any]:
    """Every non-empty `fail` list anywhere in ssh-audit's JSON report."""
    if isinstance(report, dict):
        found = [v for k, v in report.items() if k == "fail" and v]
        return found + [f for v in report.values() for f in _failures(v)]
    if isinstance(report, list):
        return [f for v in report for f in _failures(v)]
    return []


async def test_ssh_audit_finds_no_failure(hub: SshHub) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "ssh-audit"), "--json", "--port", str(hub.ssh_port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout)
    assert _failures(report) == [], report
    assert done.returncode in (0, 2), (done.returncode, done.stdout, done.stderr)  # 3: failure
    offered = {kind: {a["algorithm"] for a in report[kind]} for kind in ("kex", "enc", "mac")}
    pseudo = {"ext-info-s", "kex-strict-s-v00@openssh.com"}
    assert offered["kex"] - pseudo <= set(KEX_ALGS), offered
    assert "mlkem768x25519-sha256" in offered["kex"]
    assert offered["enc"] == set(ENCRYPTION_ALGS)
    assert offered["mac"] == set(MAC_ALGS)
    assert {k["algorithm"] for k in report["key"]} == {"ssh-ed25519"}


async def _banner(port: int) -> tuple[bytes, asyncio.StreamWriter]:
    """What the gateway says first on a new TCP connection (b"" if it drops it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        line = await asyncio.wait_for(reader.readline(), 10)
    except ConnectionError:
        line = b""
    return line, writer


async def test_unauthenticated_connections_are_throttled_per_address(hub: SshHub) -> None:
    opened = [await _banner(hub.ssh_port) for _ in range(MAX_PENDING + 5)]
    try:
        greeted = [line for line, _ in opened if line.startswith(b"SSH-2.0-Rexec")]
        assert len(greeted) == MAX_PENDING
        assert [line for line, _ in opened[MAX_PENDING:]] == [b""] * 5
    finally:
        for _, writer in opened:
            writer.close()
    # Once those go away, new connections are greeted again...

    async def greeted_again() -> bool:
        line, writer = await _banner(hub.ssh_port)
        writer.close()
        return line.startswith(b"SSH-2.0-")

    await wait_for(greeted_again, 15, what="a connection greeted after the others left")
    # ...but one address opening connections one after the other runs out of its burst.
    refused = 0
    for _ in range(BURST * 3):
        line, writer = await _banner(hub.ssh_port)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        refused += line == b""
    assert refused > 0
