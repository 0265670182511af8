"""The agent at rest: RSS and CPU over 60 s, connected with no session and with one idle
terminal open. Usage:  .venv/bin/python bench/agent_idle.py [--seconds N]"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CLK_TCK, ROOT, Setup, cpu_ticks


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def sample(pid: int, seconds: float) -> dict[str, float]:
    rss0, cpu0 = rss_kib(pid), cpu_ticks(pid)
    await asyncio.sleep(seconds)  # measuring an interval is the point here
    rss1, cpu1 = rss_kib(pid), cpu_ticks(pid)
    cpu_s = (cpu1 - cpu0) / CLK_TCK
    return {
        "rss_start_kib": rss0,
        "rss_end_kib": rss1,
        "cpu_seconds": cpu_s,
        "cpu_percent": 100 * cpu_s / seconds,
    }


async def measure(setup: Setup, seconds: float) -> dict[str, dict[str, float]]:
    assert setup.agent is not None
    pid = setup.agent.pid
    idle = await sample(pid, seconds)
    async with connect(setup.ws_url("sleep 100000"), compression=None) as ws:
        await ws.recv()  # the session message: the terminal is open
        with_session = await sample(pid, seconds)
    return {"connected, no session": idle, "one idle terminal": with_session}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/agent_idle.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rexec-bench-") as tmp:
        setup = Setup(Path(tmp))
        try:
            setup.start()
            time.sleep(2)  # past the first metrics sample after connecting
            results = asyncio.run(measure(setup, args.seconds))
        finally:
            setup.stop()
    print(f"| agent over {args.seconds:.0f} s | RSS start / end KiB | CPU s | CPU % |")
    print("|---|---|---|---|")
    for label, r in results.items():
        print(
            f"| {label} | {r['rss_start_kib']:.0f} / {r['rss_end_kib']:.0f} "
            f"| {r['cpu_seconds']:.2f} | {r['cpu_percent']:.2f} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
