"""SSH benchmark: OpenSSH's own sshd beside the Rexec SSH gateway, on the same machine.

Usage:  .venv/bin/python bench/ssh.py [--quick] [--no-container] [--json PATH]

It installs openssh-server when /usr/sbin/sshd is missing (Debian's package; the image's
policy-rc.d keeps the package from starting the system's sshd), then starts

* a private `sshd -D -f CONFIG` on 127.0.0.1 and a free port, with a throwaway host key,
  the benchmark's key in its own authorized_keys and its own pid file (the system's sshd
  config and port 22 are never touched);
* `rexec-hub serve` with its gateway on a free port, one agent on this machine, and one
  container (Docker engine and the debian base image, started and built if needed);

and measures, with OpenSSH's `ssh` client against each of sshd, gateway -> agent and
gateway -> container:

* exec throughput: `ssh T -- head -c N /dev/zero` read from a pipe (first byte -> EOF);
* upload throughput: N bytes written into `ssh T -- wc -c` (start -> the count, less the
  time `ssh T -- true` takes), checking that all N arrived;
* PTY throughput: `ssh -tt T -- 'head -c N /dev/urandom | base64'` (a remote PTY);
* echo latency: `ssh -tt T -- cat` under a local PTY (so ssh is in raw mode, as a person's
  terminal is); one letter typed, timed until it is back, repeated (p50/p99).

The same PTY measurements on a local PTY with no ssh give the floor. It prints a table and
writes JSON (default bench/results/ssh.json). Every loop has a count and a timeout; every
process it starts is ended by its pid.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptyprocess import PtyProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (
    CLK_TCK,
    ECHO_STEP_TIMEOUT,
    ECHO_WARMUP,
    MB,
    ROOT,
    Child,
    Setup,
    cpu_ticks,
    echo_plan,
    fmt,
    http,
    machine,
    median_run,
    percentiles,
    raw_echo,
    raw_throughput,
    throughput_command,
)

SSH = shutil.which("ssh") or "/usr/bin/ssh"
SSHD = "/usr/sbin/sshd"
DEFAULT_JSON = ROOT / "bench" / "results" / "ssh.json"

FULL = {"exec_bytes": 200_000_000, "pty_input": 51_000_000, "runs": 3, "echoes": 2000}
QUICK = {"exec_bytes": 50_000_000, "pty_input": 12_000_000, "runs": 1, "echoes": 500}
# Uploads use exec_bytes too.

STARTUP_TIMEOUT = 60.0
RUN_TIMEOUT = 300.0  # one throughput run
READY_TIMEOUT = 30.0  # an interactive session answers its first line


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scripted(*argv: str, timeout: float = 600) -> None:
    """One of the project's scripts (idempotent installs and services)."""
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")


def ensure_sshd() -> None:
    if not os.path.exists(SSHD):
        log("installing openssh-server ...")
        scripted("bash", "-c", ". scripts/lib.sh; apt_install openssh-server")


# --------------------------------------------------------------------------- servers


@dataclass
class Target:
    label: str
    port: int
    user: str
    hub_pid: int | None = None  # the processes whose CPU per MB is reported
    agent_pid: int | None = None


def ssh_argv(key: Path, target: Target, *options: str) -> list[str]:
    return [
        SSH,
        "-F", "/dev/null",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR",
        "-i", str(key),
        "-p", str(target.port),
        *options,
        f"{target.user}@127.0.0.1",
    ]  # fmt: skip


def start_sshd(tmp: Path, public_key: str) -> tuple[Child, int]:
    """A private sshd on 127.0.0.1 that accepts only the benchmark's key, as root."""
    ensure_sshd()
    d = tmp / "sshd"
    d.mkdir()
    host_key = d / "host_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
        check=True,
        timeout=30,
    )
    (d / "authorized_keys").write_text(public_key + "\n")
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "AcceptEnv LANG LC_*\n"
    )
    # sshd refuses to start without its privilege separation directory; Debian's unit
    # makes it at boot, which nothing does here.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    child = Child("sshd", [SSHD, "-D", "-e", "-f", str(config)], tmp / "sshd.log")
    child.wait_for_line(rf"Server listening on 127\.0\.0\.1 port {port}", STARTUP_TIMEOUT)
    return child, port


def start_rexec(tmp: Path, public_key: str, container: bool) -> tuple[Setup, list[Target], str]:
    """The hub (gateway on a free port), an online agent and, optionally, a container."""
    if container:
        log("docker engine and the debian base image ...")
        scripted("scripts/services.sh", "docker")
        scripted("scripts/base-image.sh", "debian")
    os.environ.update(
        {
            "REXEC_SSH_PORT": "0",
            "REXEC_WARM_POOL_SIZE": "0",
            "REXEC_CONTAINER_NETWORK": "none",
            "REXEC_DOCKER_ENABLED": "true" if container else "false",
        }
    )
    setup = Setup(tmp)
    setup.start()
    assert setup.hub is not None and setup.agent is not None
    m = setup.hub.wait_for_line(r"ssh gateway on 127\.0\.0\.1:(\d+)", STARTUP_TIMEOUT)
    port = int(m.group(1))
    code, body = http(
        "POST", setup.base + "/api/user/keys", {"name": "bench", "public_key": public_key},
        setup.token(),
    )  # fmt: skip
    if code != 201:
        raise RuntimeError(f"adding the SSH key: {code} {body}")
    hub = setup.hub.pid
    targets = [Target("Rexec gateway -> agent", port, setup.agent_id, hub, setup.agent.pid)]
    container_id = ""
    if container:
        spec = {"image": "debian", "name": "bench"}  # the plan's defaults (1 CPU)
        code, body = http("POST", setup.base + "/api/containers", spec, setup.token())
        if code != 201:
            raise RuntimeError(f"creating the container: {code} {body}")
        container_id = body["id"]
        targets.append(Target("Rexec gateway -> container", port, container_id, hub))
    return setup, targets, container_id


def negotiated(key: Path, target: Target) -> str:
    """The cipher and MAC the client and this server agreed on (from `ssh -v`)."""
    argv = ssh_argv(key, target)
    argv[argv.index("LogLevel=ERROR")] = "LogLevel=VERBOSE"
    done = subprocess.run(
        [*argv, "-v", "--", "true"], capture_output=True, text=True, timeout=60, check=False
    )
    m = re.search(r"kex: server->client cipher: (\S+) MAC: (\S+)", done.stderr)
    return f"{m.group(1)} ({m.group(2)})" if m else "unknown"


# --------------------------------------------------------------------------- throughput


def stream(argv: list[str], target: Target) -> dict[str, Any]:
    """Run ssh, read its stdout from a pipe until EOF: bytes, first byte -> EOF time, and
    the CPU the hub (and agent) spent on it."""
    pids = [p for p in (target.hub_pid, target.agent_pid) if p]
    before = [cpu_ticks(p) for p in pids]
    # stdin stays an open pipe that we never write: no EOF reaches the remote side early.
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    fd = proc.stdout.fileno()
    received = 0
    first = end = 0.0
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while True:  # bounded by EOF and the deadline
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                end = time.perf_counter()
                break
            if not received:
                first = time.perf_counter()
            received += len(chunk)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.label}: throughput run timed out")
        code = proc.wait(30)
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        err = proc.stderr.read().decode(errors="replace")
        proc.stdout.close()
        proc.stderr.close()
    if code != 0 or not received:
        raise RuntimeError(f"{target.label}: ssh exited {code} after {received} bytes: {err}")
    after = [cpu_ticks(p) for p in pids]
    mb = received / MB
    result: dict[str, Any] = {"bytes": received, "seconds": end - first}
    result["mb_per_s"] = mb / result["seconds"]
    ms = 1000 / CLK_TCK
    if target.hub_pid:
        result["hub_cpu_ms_per_mb"] = (after[0] - before[0]) * ms / mb
    if target.agent_pid:
        result["agent_cpu_ms_per_mb"] = (after[1] - before[1]) * ms / mb
    return result


def exec_throughput(key: Path, target: Target, size: int) -> dict[str, Any]:
    result = stream([*ssh_argv(key, target), "--", f"head -c {size} /dev/zero"], target)
    if result["bytes"] != size:
        raise RuntimeError(f"{target.label}: {result['bytes']} bytes, expected {size}")
    return result


def upload_throughput(key: Path, target: Target, size: int) -> dict[str, Any]:
    """N zero bytes into the remote `wc -c`, which must count all of them."""
    argv = ssh_argv(key, target)
    connect = []
    for _ in range(3):  # what connecting and authenticating cost, to take it out
        t0 = time.perf_counter()
        subprocess.run([*argv, "--", "true"], check=True, timeout=60, capture_output=True)
        connect.append(time.perf_counter() - t0)
    pipe = subprocess.PIPE
    proc = subprocess.Popen([*argv, "--", "wc -c"], stdin=pipe, stdout=pipe, stderr=pipe)
    assert proc.stdin is not None
    chunk = bytes(1 << 20)
    watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)  # a stalled write ends here
    watchdog.start()
    t0 = time.perf_counter()
    try:
        left = size
        while left > 0:  # bounded by size
            proc.stdin.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
        proc.stdin.close()
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()  # a line, at the end
        proc.wait(RUN_TIMEOUT)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    seconds = time.perf_counter() - t0 - statistics.median(connect)
    if proc.returncode != 0 or out.split() != [str(size).encode()]:
        raise RuntimeError(f"{target.label}: upload ended {proc.returncode}: {out!r} {err!r}")
    return {"bytes": size, "seconds": seconds, "mb_per_s": size / MB / seconds}


def pty_throughput(key: Path, target: Target, input_bytes: int) -> dict[str, Any]:
    argv = [*ssh_argv(key, target, "-tt"), "--", throughput_command(input_bytes)]
    result = stream(argv, target)
    if result["bytes"] < input_bytes * 4 // 3:
        raise RuntimeError(f"{target.label}: only {result['bytes']} bytes through the PTY")
    return result


# --------------------------------------------------------------------------- echo


def read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    """Read the PTY until `marker` has come; what follows it is returned."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"no {marker!r} within {timeout}s; got {seen[-300:]!r}")
        ready = select_read(fd, left)
        if not ready:
            continue
        seen += os.read(fd, 65536)
    return seen.split(marker, 1)[1]


def select_read(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def ssh_echo(key: Path, target: Target, count: int) -> dict[str, Any]:
    """`ssh -tt T -- cat` under a local PTY; the same plan as bench/run.py's echo."""
    argv = [*ssh_argv(key, target, "-tt"), "--", "cat"]
    proc = PtyProcess.spawn(argv, dimensions=(24, 80))
    fd = proc.fd
    samples: list[int] = []
    try:
        # Wait until ssh has put its terminal in raw mode (no local echo), then until the
        # remote cat answers a line: the session is up.
        deadline = time.monotonic() + READY_TIMEOUT
        while termios.tcgetattr(fd)[3] & termios.ECHO:
            if time.monotonic() > deadline or not proc.isalive():
                raise RuntimeError(f"{target.label}: ssh never entered raw mode")
            time.sleep(0.01)
        os.write(fd, b"ready\n")
        pending = read_until(fd, b"ready\r\nready\r\n", READY_TIMEOUT)
        timed_seen = 0
        for send, expect, timed in echo_plan(ECHO_WARMUP + count):
            t0 = time.perf_counter_ns()
            os.write(fd, send)
            got, tail = len(pending), pending
            step_deadline = time.monotonic() + ECHO_STEP_TIMEOUT
            while got < expect:
                left = step_deadline - time.monotonic()
                if left <= 0 or not select_read(fd, left):
                    raise RuntimeError(f"{target.label}: echo timed out")
                chunk = os.read(fd, 65536)
                got += len(chunk)
                tail += chunk
            t1 = time.perf_counter_ns()
            pending = tail[expect:]
            if timed:
                if tail[expect - 1 : expect] != send:
                    raise RuntimeError(f"echo mismatch: sent {send!r}, got {tail[:expect]!r}")
                timed_seen += 1
                if timed_seen > ECHO_WARMUP:
                    samples.append(t1 - t0)
        os.write(fd, b"\n\x04")  # an empty line, then EOF: cat exits and so does ssh
        end = time.monotonic() + 10
        while proc.isalive() and time.monotonic() < end:
            if select_read(fd, 0.2):
                with contextlib.suppress(OSError):
                    os.read(fd, 65536)
    finally:
        proc.terminate(force=True)
        with contextlib.suppress(Exception):
            proc.close(force=True)
    return percentiles(samples)


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    head = (
        "path",
        "exec MB/s",
        "upload MB/s",
        "PTY MB/s",
        "hub CPU ms/MB exec / PTY",
        "echo p50 / p99 µs",
    )
    rows: list[tuple[str, ...]] = []
    for r in results["targets"]:
        ex, pt = r.get("exec"), r["pty"]
        cpu = "-"
        if ex is not None and "hub_cpu_ms_per_mb" in ex:
            cpu = f"{fmt(ex['hub_cpu_ms_per_mb'], 1)} / {fmt(pt['hub_cpu_ms_per_mb'], 1)}"
        rows.append(
            (
                r["label"],
                fmt(ex["mb_per_s"], 1) if ex else "-",
                fmt(r["upload"]["mb_per_s"], 1) if r.get("upload") else "-",
                fmt(pt["mb_per_s"], 1),
                cpu,
                f"{fmt(r['echo']['p50_us'])} / {fmt(r['echo']['p99_us'])}",
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    out.append("")
    for r in results["targets"]:
        if r.get("cipher"):
            out.append(f"{r['label']}: cipher {r['cipher']}")
    sshd = results["targets"][1]
    for r in results["targets"][2:]:
        out.append(
            f"{r['label']} / sshd: exec {r['exec']['mb_per_s'] / sshd['exec']['mb_per_s']:.0%}, "
            f"upload {r['upload']['mb_per_s'] / sshd['upload']['mb_per_s']:.0%}, "
            f"PTY {r['pty']['mb_per_s'] / sshd['pty']['mb_per_s']:.0%}, "
            f"echo p50 +{r['echo']['p50_us'] - sshd['echo']['p50_us']:.0f} µs"
        )
    load = results["load_average"]
    out.append(
        f"{results['machine']['nproc']} CPUs; load average (1 min) {load['before'][0]:.2f} "
        f"before, {load['after'][0]:.2f} after"
    )
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def bench(key: Path, targets: list[Target], sizes: dict[str, int]) -> list[dict[str, Any]]:
    runs = sizes["runs"]
    exec_runs: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
    upload_runs: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
    pty_runs: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
    raw_runs: list[dict[str, Any]] = []
    for i in range(runs):  # interleaved, so slow spells of the machine hit every path
        log(f"throughput run {i + 1}/{runs}: local PTY, no ssh ...")
        raw_runs.append(raw_throughput(sizes["pty_input"]))
        log(f"  PTY {raw_runs[-1]['mb_per_s']:.1f} MB/s")
        for t in targets:
            log(f"throughput run {i + 1}/{runs}: {t.label} ...")
            exec_runs[t.label].append(exec_throughput(key, t, sizes["exec_bytes"]))
            upload_runs[t.label].append(upload_throughput(key, t, sizes["exec_bytes"]))
            pty_runs[t.label].append(pty_throughput(key, t, sizes["pty_input"]))
            log(
                f"  exec {exec_runs[t.label][-1]['mb_per_s']:.1f} MB/s, "
                f"upload {upload_runs[t.label][-1]['mb_per_s']:.1f} MB/s, "
                f"PTY {pty_runs[t.label][-1]['mb_per_s']:.1f} MB/s"
            )
    out: list[dict[str, Any]] = []
    log(f"echo: local PTY, no ssh, {sizes['echoes']} keystrokes ...")
    raw = {
        "label": "local PTY, no ssh (floor)",
        "exec": None,
        "pty": median_run(raw_runs),
        "pty_runs": raw_runs,
        "echo": raw_echo(sizes["echoes"]),
    }
    out.append(raw)
    for t in targets:
        log(f"echo: {t.label}, {sizes['echoes']} keystrokes ...")
        echo = ssh_echo(key, t, sizes["echoes"])
        log(f"  p50 {echo['p50_us']:.0f} µs, p99 {echo['p99_us']:.0f} µs")
        out.append(
            {
                "label": t.label,
                "cipher": negotiated(key, t),
                "exec": median_run(exec_runs[t.label]),
                "exec_runs": exec_runs[t.label],
                "upload": median_run(upload_runs[t.label]),
                "upload_runs": upload_runs[t.label],
                "pty": median_run(pty_runs[t.label]),
                "pty_runs": pty_runs[t.label],
                "echo": echo,
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, 1 each")
    parser.add_argument("--no-container", action="store_true", help="skip the container path")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="rexec-bench-ssh-"))
    key = tmp / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench@rexec", "-f", str(key)],
        check=True,
        timeout=30,
    )
    public_key = key.with_suffix(".pub").read_text().strip()
    children: list[Child] = []
    setup: Setup | None = None
    container_id = ""
    ok = False
    load_before = os.getloadavg()
    try:
        log(f"starting sshd, hub and agent in {tmp} ...")
        sshd, sshd_port = start_sshd(tmp, public_key)
        children.append(sshd)
        setup, rexec_targets, container_id = start_rexec(
            tmp, public_key, container=not args.no_container
        )
        targets = [Target("OpenSSH sshd 9.2", sshd_port, "root"), *rexec_targets]
        measured = bench(key, targets, sizes)
        ok = True
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except BaseException:
        for child in [*children, *(setup.children if setup else [])]:
            log(f"--- {child.name} log (tail) ---\n{child.output()[-3000:]}")
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish (bounded)
        if setup is not None:
            if container_id:
                with contextlib.suppress(Exception):
                    http("DELETE", f"{setup.base}/api/containers/{container_id}", None,
                         setup.token())  # fmt: skip
            setup.stop()
        for child in children:
            child.stop()
        if args.keep_temp or not ok:
            log(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results = {
        "mode": "quick" if args.quick else "full",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "sizes": sizes,
        "exec_command": f"head -c {sizes['exec_bytes']} /dev/zero",
        "pty_command": throughput_command(sizes["pty_input"]),
        "mb": MB,
        "targets": measured,
    }
    print(report(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
