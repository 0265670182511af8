"""Rexec relay benchmark: throughput and echo latency, hub-relayed vs a raw local PTY.

Usage:  .venv/bin/python bench/run.py [--quick] [--json PATH]

It starts its own `rexec-hub` and `rexec-agent` on 127.0.0.1 in a temp dir, measures

* throughput: `head -c N /dev/urandom | base64` in a PTY, output bytes per second
  reaching a WebSocket client (first output byte -> exit frame), plus the CPU the hub
  and the agent processes spent per MB (utime+stime from /proc/PID/stat);
* the same command in a local PTY read directly (the raw baseline);
* echo latency: one byte at a time through `cat` in a PTY (the tty echoes it),
  relayed and raw;

prints a table and writes JSON (default bench/results/latest.json). MB = 10^6 bytes.
Every loop has a count and a timeout; the hub and the agent are ended by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptyprocess import PtyProcess
from websockets.asyncio.client import connect

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000

# The output of `head -c N /dev/urandom | base64` is 4/3 N plus a newline every 76
# characters (and the PTY turns each "\n" into "\r\n"): ~68.9 MB and ~16.2 MB.
FULL_INPUT = 51_000_000
QUICK_INPUT = 12_000_000

TARGETS = {"throughput_ratio_min": 0.50, "echo_p50_us_max": 1000.0, "echo_p99_us_max": 5000.0}

STARTUP_TIMEOUT = 30.0
THROUGHPUT_TIMEOUT = 300.0  # one throughput run, relayed or raw
ECHO_STEP_TIMEOUT = 5.0  # one echo round trip
ECHO_WARMUP = 100
ECHO_LINE = 64  # characters typed before a newline empties cat's line buffer


def throughput_command(input_bytes: int) -> str:
    return f"head -c {input_bytes} /dev/urandom | base64"


# --------------------------------------------------------------------------- processes


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads, not its children), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def self_cpu_ticks() -> float:
    t = os.times()
    return (t.user + t.system) * CLK_TCK


class Child:
    """A subprocess we started, its output in a log file; ended by its own pid."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.pid = self.popen.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()[-4000:]}")
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.name}: no {pattern!r} within {timeout}s:\n{self.output()[-4000:]}"
        )

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL after 5 s."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        self._log_file.close()


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text.decode(errors="replace")


@dataclass
class Setup:
    """A running hub with one user and one online agent."""

    tmp: Path
    children: list[Child] = field(default_factory=list)
    hub: Child | None = None
    agent: Child | None = None
    base: str = ""
    agent_id: str = ""
    email: str = "bench@example.com"
    password: str = "bench password 1"
    _token: str = ""
    _token_at: float = 0.0

    def start(self) -> None:
        data = self.tmp / "hub"
        # The hub exits when it cannot bind its SSH port: a benchmark takes a free one.
        os.environ.setdefault("REXEC_SSH_PORT", "0")
        env_ok = subprocess.run(
            [
                str(BIN / "rexec-hub"),
                "user",
                "create",
                "--email",
                self.email,
                "--password",
                self.password,
                "--data-dir",
                str(data),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if env_ok.returncode != 0:
            raise RuntimeError(f"rexec-hub user create failed:\n{env_ok.stdout}{env_ok.stderr}")
        self.hub = Child(
            "rexec-hub",
            [str(BIN / "rexec-hub"), "serve", "--port", "0", "--data-dir", str(data)],
            self.tmp / "hub.log",
        )
        self.children.append(self.hub)
        m = self.hub.wait_for_line(r"listening on (http://127\.0\.0\.1:\d+)", STARTUP_TIMEOUT)
        self.base = m.group(1)

        code, answer = http(
            "POST", self.base + "/api/agents/tokens", {"name": "bench"}, self.token()
        )
        if code != 201:
            raise RuntimeError(f"agent token: {code} {answer}")
        config = self.tmp / "agent" / "agent.toml"
        reg = subprocess.run(
            [
                str(BIN / "rexec-agent"),
                "register",
                "--hub",
                self.base,
                "--token",
                answer["token"],
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        m2 = re.search(r"registered (agt_\S+)", reg.stdout)
        if reg.returncode != 0 or not m2:
            raise RuntimeError(f"rexec-agent register failed:\n{reg.stdout}{reg.stderr}")
        self.agent_id = m2.group(1)
        self.agent = Child(
            "rexec-agent",
            [str(BIN / "rexec-agent"), "run", "--config", str(config)],
            self.tmp / "agent.log",
        )
        self.children.append(self.agent)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            code, body = http("GET", f"{self.base}/api/agents/{self.agent_id}", token=self.token())
            if code == 200 and body.get("status") == "online":
                break
            if self.agent.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent not online ({code} {body}):\n{self.agent.output()}")
            time.sleep(0.1)

    def token(self) -> str:
        """An access token, renewed well before its 15-minute lifetime runs out."""
        if not self._token or time.monotonic() - self._token_at > 300:
            code, body = http(
                "POST", self.base + "/api/login", {"email": self.email, "password": self.password}
            )
            if code != 200:
                raise RuntimeError(f"login: {code} {body}")
            self._token, self._token_at = body["access_token"], time.monotonic()
        return self._token

    def ws_url(self, command: str) -> str:
        query = urllib.parse.urlencode(
            {"token": self.token(), "cols": 80, "rows": 24, "command": command}
        )
        return f"ws://{self.base.split('://', 1)[1]}/ws/terminal/{self.agent_id}?{query}"

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


# --------------------------------------------------------------------------- throughput


async def relayed_throughput(setup: Setup, input_bytes: int) -> dict[str, Any]:
    assert setup.hub is not None and setup.agent is not None
    url = setup.ws_url(throughput_command(input_bytes))
    hub0, agent0, me0 = cpu_ticks(setup.hub.pid), cpu_ticks(setup.agent.pid), self_cpu_ticks()
    received = frames = 0
    first = end = 0.0
    exit_code = None
    async with asyncio.timeout(THROUGHPUT_TIMEOUT):
        async with connect(url, compression=None, max_size=None, open_timeout=30) as ws:
            async for msg in ws:
                if isinstance(msg, bytes):
                    if not received:
                        first = time.perf_counter()
                    received += len(msg)
                    frames += 1
                    continue
                data = json.loads(msg)
                if data.get("type") == "exit":
                    end = time.perf_counter()
                    exit_code = data.get("code")
                    break
    hub1, agent1, me1 = cpu_ticks(setup.hub.pid), cpu_ticks(setup.agent.pid), self_cpu_ticks()
    if exit_code != 0 or not received:
        raise RuntimeError(f"relayed run failed: exit {exit_code}, {received} bytes")
    mb = received / MB
    ms = 1000 / CLK_TCK
    return {
        "bytes": received,
        "seconds": end - first,
        "mb_per_s": mb / (end - first),
        "hub_cpu_ms_per_mb": (hub1 - hub0) * ms / mb,
        "agent_cpu_ms_per_mb": (agent1 - agent0) * ms / mb,
        "client_cpu_ms_per_mb": (me1 - me0) * ms / mb,
        "ws_messages": frames,
        "avg_ws_message_bytes": received / frames,
    }


def raw_throughput(input_bytes: int) -> dict[str, Any]:
    proc = PtyProcess.spawn(["sh", "-c", throughput_command(input_bytes)], dimensions=(24, 80))
    fd = proc.fd
    received = reads = 0
    first = end = 0.0
    me0 = self_cpu_ticks()
    deadline = time.monotonic() + THROUGHPUT_TIMEOUT
    try:
        while True:  # bounded by EOF and the deadline
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the slave side is closed
                chunk = b""
            if not chunk:
                end = time.perf_counter()
                break
            if not received:
                first = time.perf_counter()
            received += len(chunk)
            reads += 1
            if time.monotonic() > deadline:
                raise RuntimeError("raw throughput run timed out")
    finally:
        me1 = self_cpu_ticks()
        proc.terminate(force=True)
        with contextlib.suppress(Exception):
            proc.close(force=True)
    mb = received / MB
    return {
        "bytes": received,
        "seconds": end - first,
        "mb_per_s": mb / (end - first),
        "reader_cpu_ms_per_mb": (me1 - me0) * (1000 / CLK_TCK) / mb,
        "reads": reads,
        "avg_read_bytes": received / reads,
    }


def producer_throughput(input_bytes: int) -> dict[str, Any]:
    """The command alone, output to a pipe we drain (no PTY): what it can produce."""
    proc = subprocess.Popen(["sh", "-c", throughput_command(input_bytes)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    received = 0
    start = time.perf_counter()
    deadline = time.monotonic() + THROUGHPUT_TIMEOUT
    try:
        while time.monotonic() < deadline:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            received += len(chunk)
    finally:
        end = time.perf_counter()
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    return {"bytes": received, "seconds": end - start, "mb_per_s": received / MB / (end - start)}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every numeric field over the runs."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


# --------------------------------------------------------------------------- echo

# The echo plan: `count` timed single characters, with an untimed newline after every
# ECHO_LINE characters so cat's line buffer never fills. A typed character comes back
# as itself (tty echo); a newline as "\r\n" (echo) then the line from cat plus "\r\n".


def echo_plan(total: int) -> list[tuple[bytes, int, bool]]:
    """(bytes to send, bytes expected back, timed?) for `total` timed characters."""
    plan: list[tuple[bytes, int, bool]] = []
    in_line = 0
    letters = b"abcdefghijklmnopqrstuvwxyz"
    for i in range(total):
        plan.append((letters[i % 26 : i % 26 + 1], 1, True))
        in_line += 1
        if in_line == ECHO_LINE:
            plan.append((b"\n", 2 + in_line + 2, False))
            in_line = 0
    return plan


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] / 1000

    return {
        "count": len(s),
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "max_us": s[-1] / 1000,
        "mean_us": statistics.fmean(s) / 1000,
    }


async def relayed_echo(setup: Setup, count: int) -> dict[str, Any]:
    url = setup.ws_url("cat")
    plan = echo_plan(ECHO_WARMUP + count)
    samples: list[int] = []
    timed_seen = 0
    async with connect(url, compression=None, max_size=None, open_timeout=30) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if first.get("type") != "session":
            raise RuntimeError(f"expected a session message, got {first}")
        await asyncio.sleep(0.5)  # let cat start and set up its terminal
        pending = b""
        for send, expect, timed in plan:
            t0 = time.perf_counter_ns()
            await ws.send(send)
            got = len(pending)
            tail = pending
            pending = b""
            async with asyncio.timeout(ECHO_STEP_TIMEOUT):
                while got < expect:
                    msg = await ws.recv()
                    if isinstance(msg, str):
                        data = json.loads(msg)
                        if data.get("type") == "exit":
                            raise RuntimeError(f"cat exited during the echo test: {data}")
                        continue
                    got += len(msg)
                    tail += msg
            t1 = time.perf_counter_ns()
            if got > expect:  # more than expected: keep the surplus for the next step
                pending = tail[expect:]
            if timed:
                if tail[expect - 1 : expect] != send:
                    raise RuntimeError(f"echo mismatch: sent {send!r}, got {tail[:expect]!r}")
                timed_seen += 1
                if timed_seen > ECHO_WARMUP:
                    samples.append(t1 - t0)
        await ws.send(b"\n\x04")  # end the line, then EOF on an empty line: cat exits
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                async for msg in ws:
                    if isinstance(msg, str) and json.loads(msg).get("type") == "exit":
                        break
    return percentiles(samples)


def raw_echo(count: int) -> dict[str, Any]:
    proc = PtyProcess.spawn(["cat"], dimensions=(24, 80))
    fd = proc.fd
    plan = echo_plan(ECHO_WARMUP + count)
    samples: list[int] = []
    timed_seen = 0
    try:
        time.sleep(0.5)
        pending = b""
        for send, expect, timed in plan:
            t0 = time.perf_counter_ns()
            os.write(fd, send)
            got = len(pending)
            tail = pending
            pending = b""
            deadline = time.monotonic() + ECHO_STEP_TIMEOUT
            while got < expect:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise RuntimeError("raw echo timed out")
                chunk = os.read(fd, 65536)
                got += len(chunk)
                tail += chunk
            t1 = time.perf_counter_ns()
            if got > expect:
                pending = tail[expect:]
            if timed:
                if tail[expect - 1 : expect] != send:
                    raise RuntimeError(f"echo mismatch: sent {send!r}, got {tail[:expect]!r}")
                timed_seen += 1
                if timed_seen > ECHO_WARMUP:
                    samples.append(t1 - t0)
    finally:
        proc.terminate(force=True)
        with contextlib.suppress(Exception):
            proc.close(force=True)
    return percentiles(samples)


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    commit, dirty = "", None
    with contextlib.suppress(Exception):
        git = ["git", "-C", str(ROOT)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                [*git, "status", "--porcelain"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        )
    return {
        "cpu_model": cpu,
        "nproc": len(os.sched_getaffinity(0)),
        "memory_total_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results: dict[str, Any]) -> str:
    raw, rel = results["raw"], results["relayed"]
    rows = [
        (
            "raw local PTY",
            fmt(raw["throughput"]["mb_per_s"], 1),
            "-",
            "-",
            f"{fmt(raw['echo']['p50_us'])} / {fmt(raw['echo']['p99_us'])}",
        ),
        (
            "relayed (agent -> hub -> WS)",
            fmt(rel["throughput"]["mb_per_s"], 1),
            fmt(rel["throughput"]["hub_cpu_ms_per_mb"], 1),
            fmt(rel["throughput"]["agent_cpu_ms_per_mb"], 1),
            f"{fmt(rel['echo']['p50_us'])} / {fmt(rel['echo']['p99_us'])}",
        ),
    ]
    head = ("target", "MB/s", "hub CPU ms/MB", "agent CPU ms/MB", "echo p50/p99 µs")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    v = results["verdict"]
    out.append("")
    out.append(
        f"relayed/raw throughput: {v['throughput_ratio']:.1%} "
        f"(target >= {TARGETS['throughput_ratio_min']:.0%}): "
        f"{'OK' if v['throughput_ok'] else 'MISSED'}"
    )
    out.append(
        f"relayed echo p50 {rel['echo']['p50_us']:.0f} µs "
        f"(target < {TARGETS['echo_p50_us_max']:.0f}): {'OK' if v['echo_p50_ok'] else 'MISSED'}; "
        f"p99 {rel['echo']['p99_us']:.0f} µs "
        f"(target < {TARGETS['echo_p99_us_max']:.0f}): {'OK' if v['echo_p99_ok'] else 'MISSED'}"
    )
    out.append(
        f"client (this process) CPU while relayed: "
        f"{rel['throughput']['client_cpu_ms_per_mb']:.1f} ms/MB; "
        f"raw reader: {raw['throughput']['reader_cpu_ms_per_mb']:.1f} ms/MB"
    )
    out.append(
        f"the command alone into a pipe (no PTY): "
        f"{results['producer_no_pty']['mb_per_s']:.0f} MB/s;"
        f" avg PTY read {raw['throughput']['avg_read_bytes']:.0f} B (raw),"
        f" avg WS message {rel['throughput']['avg_ws_message_bytes']:.0f} B (relayed)"
    )
    return "\n".join(out)


# --------------------------------------------------------------------------- main


async def bench(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    input_bytes = QUICK_INPUT if args.quick else FULL_INPUT
    runs = 1 if args.quick else 3
    echo_count = 500 if args.quick else 2000
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    log("producer alone (pipe, no PTY) ...")
    producer = producer_throughput(input_bytes)
    log(f"  {producer['mb_per_s']:.1f} MB/s")
    raw_runs, rel_runs = [], []
    for i in range(runs):
        log(f"throughput run {i + 1}/{runs}: raw local PTY ...")
        raw_runs.append(raw_throughput(input_bytes))
        log(f"  {raw_runs[-1]['mb_per_s']:.1f} MB/s")
        log(f"throughput run {i + 1}/{runs}: relayed ...")
        rel_runs.append(await relayed_throughput(setup, input_bytes))
        r = rel_runs[-1]
        log(
            f"  {r['mb_per_s']:.1f} MB/s, hub {r['hub_cpu_ms_per_mb']:.1f} ms/MB, "
            f"agent {r['agent_cpu_ms_per_mb']:.1f} ms/MB"
        )
    log(f"echo latency: raw local PTY, {echo_count} round trips ...")
    raw_e = raw_echo(echo_count)
    log(f"  p50 {raw_e['p50_us']:.0f} µs, p99 {raw_e['p99_us']:.0f} µs")
    log(f"echo latency: relayed, {echo_count} round trips ...")
    rel_e = await relayed_echo(setup, echo_count)
    log(f"  p50 {rel_e['p50_us']:.0f} µs, p99 {rel_e['p99_us']:.0f} µs")

    raw_t, rel_t = median_run(raw_runs), median_run(rel_runs)
    ratio = rel_t["mb_per_s"] / raw_t["mb_per_s"]
    return {
        "mode": "quick" if args.quick else "full",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "command": throughput_command(input_bytes),
        "mb": MB,
        "throughput_runs": runs,
        "echo_round_trips": echo_count,
        "echo_warmup": ECHO_WARMUP,
        "producer_no_pty": producer,
        "raw": {"throughput": raw_t, "throughput_runs": raw_runs, "echo": raw_e},
        "relayed": {"throughput": rel_t, "throughput_runs": rel_runs, "echo": rel_e},
        "targets": TARGETS,
        "verdict": {
            "throughput_ratio": ratio,
            "throughput_ok": ratio >= TARGETS["throughput_ratio_min"],
            "echo_p50_ok": rel_e["p50_us"] < TARGETS["echo_p50_us_max"],
            "echo_p99_ok": rel_e["p99_us"] < TARGETS["echo_p99_us_max"],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 MB, 1 run, 500 echoes")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()

    # SIGTERM ends the run like Ctrl-C, so the finally below still stops the children.
    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="rexec-bench-"))
    setup = Setup(tmp)
    ok = False
    try:
        print(f"starting hub and agent in {tmp} ...", file=sys.stderr, flush=True)
        setup.start()
        results = asyncio.run(bench(setup, args))
        ok = True
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BaseException:
        for child in setup.children:
            print(f"--- {child.name} log (tail) ---\n{child.output()[-3000:]}", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish (bounded)
        setup.stop()
        if args.keep_temp or not ok:
            print(f"temp dir kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(report(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
