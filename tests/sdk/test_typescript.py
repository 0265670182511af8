"""`@rexec/sdk` (sdk/typescript): compiled with tsc and tested with Node's test runner
against a real hub with Docker containers (the shared scenario and more)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.containers.conftest import HubFactory

pytestmark = [pytest.mark.backend_independent, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sdk" / "typescript"


async def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command in the package; its output, failing the test on a non-zero exit."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=PACKAGE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{text[-8000:]}"
    return text


async def test_typescript_sdk_against_a_real_hub(make_hub: HubFactory) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm is installed by scripts/test.sh"
    if not (PACKAGE / "node_modules" / "typescript").is_dir():
        await run(npm, "ci", "--no-audit", "--no-fund")
    await run(str(PACKAGE / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json")
    hub = await make_hub()
    out = await run(
        "node", "--experimental-websocket", "--test", "test/", env={"REXEC_HUB_URL": hub.url}
    )
    assert "# fail 0" in out and "# pass 2" in out, out
