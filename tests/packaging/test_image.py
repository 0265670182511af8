"""The hub image (Dockerfile.hub), built with the real engine and run: a non-root user,
configuration from the environment and a mounted file, /healthz answering, Docker's
health check turning healthy, a graceful `docker stop`, and `rexec-hub --version`.

A warm build (only the code layers redone) takes seconds; a cold one a few minutes,
hence the long timeout."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import __version__
from tests.containers.conftest import ensure_docker
from tests.support import ROOT, create_postgres_database, run_coroutine_in_thread

pytestmark = [pytest.mark.timeout(900), pytest.mark.backend_independent]


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def inspect(cid: str) -> dict[str, Any]:
    done = docker("inspect", cid)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)[0])


def poll(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None:
        if os.environ.get("CI"):
            pytest.fail("no docker command: scripts/test.sh installs it")
        pytest.skip("docker build is impossible here: no docker command")
    started = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "docker"], capture_output=True, text=True
    )
    if started.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"no Docker engine: {started.stderr}")
        pytest.skip(f"docker build is impossible here: no Docker engine ({started.stderr})")
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-hub-image.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text('log_format = "json"\nregistration_enabled = false\n')
    path.chmod(0o644)
    return path


@pytest.fixture
def hub_container(image: str, config: Path) -> Iterator[str]:
    name = f"rexec-hub-test-{secrets.token_hex(4)}"
    run = docker(
        *("run", "-d", "--name", name),
        # Docker's own health check, only more often than the image's 15 s.
        *("--health-interval", "1s", "--health-start-period", "0s"),
        *("-v", f"{config}:/etc/rexec-hub/hub.toml:ro"),
        *("-e", "REXEC_CONFIG=/etc/rexec-hub/hub.toml", "-e", "REXEC_DOCKER_ENABLED=false"),
        image,
    )
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    try:
        yield cid
    finally:
        docker("rm", "-f", "-v", cid)  # ours, by id, with its data volume


def test_hub_image_runs_as_non_root_and_turns_healthy(image: str, hub_container: str) -> None:
    cid = hub_container
    meta = inspect(image)
    assert meta["Config"]["User"] == "rexec-hub"
    assert "/healthz" in " ".join(meta["Config"]["Healthcheck"]["Test"])
    assert "/var/lib/rexec-hub" in meta["Config"]["Volumes"]

    def address() -> str:
        state = inspect(cid)
        assert state["State"]["Running"], docker("logs", cid).stderr
        return str(state["NetworkSettings"]["IPAddress"])

    base = f"http://{poll(address, 30, 'a container address')}:8080"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                return bool(resp.status == 200 and json.load(resp) == {"status": "ok"})
        except OSError:
            return False

    poll(answers, 60, "/healthz")
    # The web app the web stage built is in the wheel, and served.
    with urllib.request.urlopen(base + "/", timeout=5) as resp:
        page = resp.read().decode()
    assert resp.status == 200 and '<script type="module"' in page and "/assets/" in page, page[:300]
    poll(
        lambda: inspect(cid)["State"]["Health"]["Status"] == "healthy",
        60,
        "the health check to turn healthy",
    )
    # The hub runs as the image's user, never root, and owns its data volume.
    ids = docker("exec", cid, "sh", "-c", "id -u; stat -c %u /var/lib/rexec-hub/rexec.db")
    assert ids.returncode == 0, ids.stderr
    uid, owner = ids.stdout.split()
    assert uid == owner == "10001"
    top = docker("top", cid, "-o", "pid,uid,args")
    assert "rexec-hub serve" in top.stdout
    assert all(line.split()[1] != "0" for line in top.stdout.splitlines()[1:]), top.stdout
    # The mounted file configured it: registration is off, logs are JSON lines.
    req = urllib.request.Request(
        base + "/api/register",
        data=b'{"email": "a@example.com", "password": "correct horse 1"}',
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 403
    # SIGTERM: a graceful stop, exit code 0.
    stopped = docker("stop", "-t", "20", cid)
    assert stopped.returncode == 0, stopped.stderr
    state = inspect(cid)["State"]
    assert state["ExitCode"] == 0, docker("logs", cid).stderr
    logs = docker("logs", cid)
    lines = [line for line in logs.stderr.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines), lines[:5]
    assert "stopping gracefully" in logs.stderr
    assert "listening on http://0.0.0.0:8080" in logs.stdout


def test_hub_image_on_postgresql_runs_containers_through_the_socket(image: str) -> None:
    """The compose topology's parts, for real: the image against PostgreSQL, making
    containers through the host's Docker socket as its non-root user (group_add)."""
    ensure_docker()
    database = run_coroutine_in_thread(
        create_postgres_database(f"rexec_image_{secrets.token_hex(4)}")
    )
    instance = f"image-test-{secrets.token_hex(4)}"
    socket_gid = str(os.stat("/var/run/docker.sock").st_gid)
    run = docker(
        *("run", "-d", "--network", "host", "--group-add", socket_gid),
        *("-v", "/var/run/docker.sock:/var/run/docker.sock"),
        *("-e", "REXEC_HOST=127.0.0.1", "-e", "REXEC_PORT=0", "-e", "REXEC_SSH_PORT=0"),
        *("-e", f"REXEC_DATABASE_URL={database}", "-e", f"REXEC_INSTANCE_ID={instance}"),
        *("-e", "REXEC_CONTAINER_NETWORK=none", "-e", "REXEC_WARM_POOL_SIZE=0"),
        image,
    )
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    try:

        def listening() -> str | None:
            m = re.search(r"listening on (http://\S+)", docker("logs", cid).stdout)
            return m.group(1) if m else None

        base = poll(listening, 60, "the hub to listen")

        def call(method: str, path: str, body: Any = None, token: str = "") -> Any:
            req = urllib.request.Request(
                base + path,
                data=json.dumps(body).encode() if body is not None else None,
                method=method,
                headers={"Authorization": f"Bearer {token}"} if token else {},
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read()
                return json.loads(text) if text else None

        account = {"email": "img@example.com", "password": "correct horse 1"}
        call("POST", "/api/register", account)
        token = call("POST", "/api/login", account)["access_token"]
        ready = call("GET", "/readyz")
        assert ready["checks"] == {"database": "ok", "docker": "ok"}
        box = call("POST", "/api/containers", {"image": "busybox"}, token)
        assert box["status"] == "running"
        done = call("POST", f"/api/containers/{box['id']}/exec", {"cmd": "echo $((6*7))"}, token)
        assert done["stdout"] == "42\n" and done["exit_code"] == 0
        call("DELETE", f"/api/containers/{box['id']}", None, token)
        left = docker("ps", "-aq", "--filter", f"label=rexec.instance={instance}")
        assert left.stdout.strip() == ""
    finally:
        docker("rm", "-f", "-v", cid)
        leftovers = docker("ps", "-aq", "--filter", f"label=rexec.instance={instance}")
        for other in leftovers.stdout.split():
            docker("rm", "-f", other)


def test_hub_image_prints_its_version(image: str) -> None:
    done = docker("run", "--rm", image, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"rexec-hub {__version__}"
