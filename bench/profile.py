"""Profile the hub and the agent with py-spy while relayed throughput runs.

Usage:  .venv/bin/pip install py-spy
        .venv/bin/python bench/profile.py [--runs 5] [--out bench/results/profile]

Writes collapsed stacks (`hub.txt`, `agent.txt`, for flamegraph tools or speedscope)
and prints the top functions by self time and by inclusive time for each process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import BIN, FULL_INPUT, ROOT, Setup, relayed_throughput


def top(path: Path, n: int = 25) -> str:
    """Self and inclusive sample counts per function from py-spy's raw format."""
    self_count: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        self_count[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    out = [f"{path.name}: {total} samples"]
    out.append("  self time:")
    out += [f"    {c / total:6.1%}  {f}" for f, c in self_count.most_common(n)]
    out.append("  inclusive time:")
    out += [f"    {c / total:6.1%}  {f}" for f, c in incl.most_common(n)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "profile")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if not pyspy:
        sys.exit("py-spy not found: .venv/bin/pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rexec-profile-"))
    setup = Setup(tmp)
    spies: list[subprocess.Popen[bytes]] = []
    try:
        setup.start()
        assert setup.hub is not None and setup.agent is not None
        for name, pid in (("hub", setup.hub.pid), ("agent", setup.agent.pid)):
            spies.append(
                subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        str(args.rate),
                        "--format",
                        "raw",
                        "--output",
                        str(args.out / f"{name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(1.0)  # let py-spy attach
        for i in range(max(1, min(args.runs, 50))):
            r = asyncio.run(relayed_throughput(setup, FULL_INPUT))
            print(
                f"run {i + 1}: {r['mb_per_s']:.1f} MB/s, hub {r['hub_cpu_ms_per_mb']:.1f} ms/MB, "
                f"agent {r['agent_cpu_ms_per_mb']:.1f} ms/MB",
                file=sys.stderr,
            )
    finally:
        for spy in spies:  # SIGINT: py-spy writes its output and exits
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(5)
        setup.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for name in ("hub", "agent"):
        path = args.out / f"{name}.txt"
        if path.exists():
            print(top(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
