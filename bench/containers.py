"""Container start latency: `POST /api/containers` to the first byte of the shell's
prompt on a terminal socket, with the warm pool (the default) and without (cold).

Usage:  .venv/bin/python bench/containers.py [--runs N] [--json PATH]

Starts its own hub (SQLite, network mode none) twice on 127.0.0.1, needs a Docker
engine and the busybox base image (scripts/services.sh docker; scripts/base-image.sh).
Each created container is deleted before the next; hubs are ended by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BIN, ROOT, Child, http

STEP_TIMEOUT = 30.0


def start_hub(tmp: Path, pool: int) -> tuple[Child, str, str]:
    data = tmp / f"hub-{pool}"
    subprocess.run(
        [
            str(BIN / "rexec-hub"),
            "user",
            "create",
            "--email",
            "b@example.com",
            "--password",
            "bench password 1",
            "--data-dir",
            str(data),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {
        **os.environ,
        "REXEC_WARM_POOL_SIZE": str(pool),
        "REXEC_CONTAINER_NETWORK": "none",
        "REXEC_SSH_PORT": "0",
    }
    argv = [str(BIN / "rexec-hub"), "serve", "--port", "0", "--data-dir", str(data)]
    os.environ.update(env)
    hub = Child(f"hub(pool={pool})", argv, tmp / f"hub-{pool}.log")
    base = hub.wait_for_line(r"listening on (http://127\.0\.0\.1:\d+)", 30).group(1)
    code, body = http(
        "POST", base + "/api/login", {"email": "b@example.com", "password": "bench password 1"}
    )
    if code != 200:
        raise RuntimeError(f"login: {code} {body}")
    return hub, base, body["access_token"]


async def create_to_prompt(base: str, token: str) -> float:
    started = time.perf_counter()
    code, body = await asyncio.to_thread(http, "POST", base + "/api/containers", {}, token)
    if code != 201:
        raise RuntimeError(f"create: {code} {body}")
    query = urllib.parse.urlencode({"token": token})
    url = f"ws://{base.split('://', 1)[1]}/ws/terminal/{body['id']}?{query}"
    async with asyncio.timeout(STEP_TIMEOUT), connect(url, compression=None) as ws:
        while True:
            msg = await ws.recv()
            if isinstance(msg, bytes) and msg:
                elapsed = time.perf_counter() - started
                break
    await asyncio.to_thread(http, "DELETE", f"{base}/api/containers/{body['id']}", None, token)
    return elapsed * 1000


async def measure(base: str, token: str, runs: int, pool: int) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        if pool:  # let the pool refill, as between real users' requests
            await asyncio.sleep(1.0)
        samples.append(await create_to_prompt(base, token))
    samples.sort()
    return {
        "runs": runs,
        "p50_ms": statistics.median(samples),
        "min_ms": samples[0],
        "max_ms": samples[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/containers.json")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rexec-bench-") as tmp:
        for label, pool in (("warm", 2), ("cold", 0)):
            hub, base, token = start_hub(Path(tmp), pool)
            try:
                if pool:
                    time.sleep(3)  # the pool fills after start
                results[label] = asyncio.run(measure(base, token, args.runs, pool))
            finally:
                hub.stop()
    print("| start | p50 ms | min ms | max ms |\n|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['p50_ms']:.0f} | {r['min_ms']:.0f} | {r['max_ms']:.0f} |")
    print("targets: warm p50 < 150 ms, cold p50 < 1000 ms")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
