"""What recording costs: relayed throughput with session recording on and off.

Usage:  .venv/bin/python bench/recording.py [--runs N] [--json PATH]

Starts a hub and an agent (bench/run.py's set-up) once with recording on and once with
REXEC_RECORDING_ENABLED=false, runs the same base64 flood through each, and prints the
medians. Target: recording costs under 10% of the throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import FULL_INPUT, ROOT, Setup, median_run, relayed_throughput


def measure(recording: bool, runs: int) -> dict[str, Any]:
    os.environ["REXEC_RECORDING_ENABLED"] = "true" if recording else "false"
    with tempfile.TemporaryDirectory(prefix="rexec-bench-") as tmp:
        setup = Setup(Path(tmp))
        try:
            setup.start()
            results = [asyncio.run(relayed_throughput(setup, FULL_INPUT)) for _ in range(runs)]
        finally:
            setup.stop()
    return median_run(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/recording.json")
    args = parser.parse_args()
    on = measure(True, args.runs)
    off = measure(False, args.runs)
    cost = 1 - on["mb_per_s"] / off["mb_per_s"]
    print("| recording | MB/s | hub CPU ms/MB |\n|---|---|---|")
    print(f"| on | {on['mb_per_s']:.1f} | {on['hub_cpu_ms_per_mb']:.1f} |")
    print(f"| off | {off['mb_per_s']:.1f} | {off['hub_cpu_ms_per_mb']:.1f} |")
    print(f"recording costs {cost * 100:.1f}% of throughput (target: under 10%)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"on": on, "off": off, "cost": cost}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
