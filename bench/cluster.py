"""Two hubs against one: what relaying a terminal between hubs costs (docs/cluster.md).

Usage:  .venv/bin/python bench/cluster.py [--quick] [--json PATH]

Starts PostgreSQL and Redis through scripts/services.sh, a fresh database, hub A with an
agent, and hub B of the same cluster, all on 127.0.0.1. Then measures, alternating,
the same things as bench/run.py (throughput of `head -c N /dev/urandom | base64` and
one-byte echo latency through `cat`):
  * one hub:  client -> hub A -> agent;
  * two hubs: client -> hub B -> hub A -> agent (B relays to A).
Hub CPU per MB is summed over both hubs. Every loop has a count and a timeout;
processes are ended by pid; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    BIN,
    FULL_INPUT,
    QUICK_INPUT,
    ROOT,
    STARTUP_TIMEOUT,
    Child,
    Setup,
    cpu_ticks,
    fmt,
    machine,
    median_run,
    relayed_echo,
    relayed_throughput,
)

DEFAULT_JSON = ROOT / "bench" / "results" / "cluster.json"


def service(name: str) -> str:
    return subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), name],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout.strip()


def psql(base: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


async def measure(one: Setup, two: Setup, runs: int, size: int, echoes: int) -> dict[str, Any]:
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    assert two.hub is not None and one.hub is not None
    results: dict[str, dict[str, Any]] = {"one_hub": {"runs": []}, "two_hubs": {"runs": []}}
    for i in range(runs):
        for name, setup in (("one_hub", one), ("two_hubs", two)):
            log(f"throughput run {i + 1}/{runs}: {name} ...")
            a0 = cpu_ticks(one.hub.pid)
            r = await relayed_throughput(setup, size)  # counts the CPU of setup.hub
            if name == "two_hubs":  # B relayed; A, holding the agent, worked too
                a_ms = (cpu_ticks(one.hub.pid) - a0) * 1000 / os.sysconf("SC_CLK_TCK")
                r["relaying_hub_cpu_ms_per_mb"] = r["hub_cpu_ms_per_mb"]
                r["hub_cpu_ms_per_mb"] += a_ms / (r["bytes"] / 1e6)
            results[name]["runs"].append(r)
            log(f"  {r['mb_per_s']:.1f} MB/s")
    for name, setup in (("one_hub", one), ("two_hubs", two)):
        log(f"echo latency: {name}, {echoes} round trips ...")
        results[name]["echo"] = await relayed_echo(setup, echoes)
        e = results[name]["echo"]
        log(f"  p50 {e['p50_us']:.0f} µs, p99 {e['p99_us']:.0f} µs")
    for name in results:
        results[name]["throughput"] = median_run(results[name]["runs"])
    return results


def report(results: dict[str, Any]) -> str:
    head = ("path", "MB/s", "hub CPU ms/MB (all hubs)", "echo p50 / p99 µs")
    rows = []
    for name, label in (
        ("one_hub", "client -> A -> agent"),
        ("two_hubs", "client -> B -> A -> agent"),
    ):
        r = results[name]
        rows.append(
            (
                label,
                fmt(r["throughput"]["mb_per_s"], 1),
                fmt(r["throughput"]["hub_cpu_ms_per_mb"], 1),
                f"{fmt(r['echo']['p50_us'])} / {fmt(r['echo']['p99_us'])}",
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    return "\n".join(
        [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 MB, 1 run, 500 echoes")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    size, runs, echoes = (QUICK_INPUT, 1, 500) if args.quick else (FULL_INPUT, 3, 2000)

    pg, redis = service("postgres"), service("redis")
    db = f"rexec_bench_{secrets.token_hex(4)}"
    psql(pg, f'CREATE DATABASE "{db}"')
    os.environ.update(
        {
            "REXEC_DATABASE_URL": pg.rsplit("/", 1)[0] + "/" + db,
            "REXEC_REDIS_URL": redis,
            "REXEC_REDIS_PREFIX": db,
            "REXEC_JWT_SECRET": secrets.token_urlsafe(32),
            "REXEC_DOCKER_ENABLED": "false",
            "REXEC_SSH_PORT": "0",
        }
    )
    tmp = Path(tempfile.mkdtemp(prefix="rexec-bench-cluster-"))
    one = Setup(tmp)
    try:
        one.start()  # hub A and the agent
        b = Child(
            "rexec-hub-b",
            [str(BIN / "rexec-hub"), "serve", "--port", "0", "--data-dir", str(tmp / "hub-b")],
            tmp / "hub-b.log",
        )
        one.children.append(b)
        m = b.wait_for_line(r"listening on (http://127\.0\.0\.1:\d+)", STARTUP_TIMEOUT)
        two = dataclasses.replace(one, base=m.group(1), children=[])
        two.hub = b  # relayed_throughput counts B's CPU; measure() adds A's
        results = asyncio.run(measure(one, two, runs, size, echoes))
    finally:
        one.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        psql(pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    results = {
        "mode": "quick" if args.quick else "full",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        **results,
    }
    print(report(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
