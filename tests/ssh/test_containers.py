"""The gateway to hub-managed containers (a real Docker engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pexpect
import pytest

from tests.containers.conftest import cleanup, ensure_docker
from tests.ssh.conftest import Key, SshHub, make_key, run_ssh, ssh_argv
from tests.support import Api


@pytest.fixture
async def chub(tmp_path: Path) -> AsyncIterator[SshHub]:
    import docker

    ensure_docker()
    env = {
        "REXEC_CONTAINER_NETWORK": "none",
        "REXEC_WARM_POOL_SIZE": "0",
        "REXEC_CONTAINER_MEMORY_MB_DEFAULT": "128",
    }
    hub = await SshHub(tmp_path / "chub", env=env).start()
    yield hub
    hub.kill()
    client = docker.from_env()
    try:
        cleanup(client, hub.data_dir)
    finally:
        client.close()


async def test_container_exec_shell_and_stopped(
    chub: SshHub, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    alice = await Api(http, chub.url).sign_up("alice@example.com")
    key: Key = make_key(tmp_path / "keys" / "alice")
    await alice.ok("POST", "/api/user/keys", {"name": "k", "public_key": key.public}, 201)
    box = await alice.ok("POST", "/api/containers", {"name": "sandbox"}, 201)

    done = await run_ssh(chub, key, box["id"], "sh", "-c", "'echo out; echo err >&2; exit 3'")
    assert (done.code, done.stdout, done.stderr) == (3, "out\n", "err\n")
    done = await run_ssh(chub, key, "sandbox", "echo", "by-name")
    assert (done.code, done.stdout) == (0, "by-name\n"), done

    argv = ssh_argv(chub, key, box["id"])
    child = pexpect.spawn(argv[0], argv[1:], timeout=30, dimensions=(24, 80))
    try:
        child.sendline("echo $((6*7))")
        child.expect("42\r\n")
        child.setwinsize(33, 99)
        child.sendline("stty size")
        child.expect("33 99")
        child.sendline("exit 4")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 4

    await alice.ok("DELETE", f"/api/containers/{box['id']}", status=204)
    gone = await run_ssh(chub, key, box["id"], "true")
    assert gone.code != 0 and gone.stderr.count("\n") == 1 and "No such target" in gone.stderr
