"""The Go SDK (sdk/go, module rexec.dev/sdk): `go test` against a real hub with Docker
containers (the shared scenario and more). Built offline: the only dependency is
Debian's golang-github-gorilla-websocket-dev, which go.mod's `replace` points at."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.containers.conftest import HubFactory

pytestmark = [pytest.mark.backend_independent, pytest.mark.timeout(600)]
MODULE = Path(__file__).resolve().parents[2] / "sdk" / "go"


async def test_go_sdk_against_a_real_hub(make_hub: HubFactory, tmp_path: Path) -> None:
    go = shutil.which("go")
    assert go is not None, "golang-go is installed by scripts/test.sh"
    hub = await make_hub()
    env = {
        **os.environ,
        "REXEC_HUB_URL": hub.url,
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOPATH": str(tmp_path / "gopath"),
        "GOCACHE": os.environ.get("GOCACHE") or str(Path.home() / ".cache" / "go-build"),
    }
    proc = await asyncio.create_subprocess_exec(
        go,
        "test",
        "-count=1",
        "-v",
        "./...",
        cwd=MODULE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 400)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-8000:]
    assert (
        "--- PASS: TestScenario" in text and "--- PASS: TestErrorsRefreshApprovalsBilling" in text
    )
