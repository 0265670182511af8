"""The gateway to hub-managed containers (a real Docker engine)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pexpect
import pytest

from tests.containers.conftest import cleanup, ensure_docker
from tests.ssh.conftest import (
    LANG,
    SFTP,
    TERM,
    Key,
    SshHub,
    command_ended,
    ended_with,
    make_key,
    run_argv,
    run_ssh,
    running_command,
    scp_argv,
    spawn,
)
from tests.support import Api, assert_error, wait_for


@contextlib.asynccontextmanager
async def container_hub(data_dir: Path, **env: str) -> AsyncIterator[SshHub]:
    import docker

    ensure_docker()
    env = {
        "REXEC_CONTAINER_NETWORK": "none",
        "REXEC_WARM_POOL_SIZE": "0",
        "REXEC_CONTAINER_MEMORY_MB_DEFAULT": "128",
        **env,
    }
    hub = await SshHub(data_dir, env=env).start()
    try:
        yield hub
    finally:
        hub.kill()
        client = docker.from_env()
        try:
            cleanup(client, hub.data_dir)
        finally:
            client.close()


@pytest.fixture
async def chub(tmp_path: Path) -> AsyncIterator[SshHub]:
    async with container_hub(tmp_path / "chub") as hub:
        yield hub


async def test_container_exec_shell_and_deleted(
    chub: SshHub, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    alice = await Api(http, chub.url).sign_up("alice@example.com")
    key: Key = make_key(tmp_path / "keys" / "alice")
    await alice.ok(
        "POST", "/api/user/keys", {"name": "k", "public_key": key.public, "kind": "person"}, 201
    )
    box = await alice.ok("POST", "/api/containers", {"name": "sandbox"}, 201)

    done = await run_ssh(chub, key, box["id"], "sh", "-c", "'echo out; echo err >&2; exit 3'")
    assert (done.code, done.stdout, done.stderr) == (3, "out\n", "err\n")
    done = await run_ssh(chub, key, "sandbox", "echo", "by-name")
    assert (done.code, done.stdout) == (0, "by-name\n"), done

    child = spawn(chub, key, box["id"], timeout=30)
    try:
        child.sendline("echo $((6*7))")
        child.expect("42\r\n")
        child.sendline("echo env:$TERM:$LANG")  # the client's, in the container's PTY
        child.expect(f"env:{TERM}:{LANG}")
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


@pytest.fixture
async def alice_box(
    chub: SshHub, http: aiohttp.ClientSession, tmp_path: Path
) -> tuple[Api, Key, str]:
    alice = await Api(http, chub.url).sign_up("alice@example.com")
    key = make_key(tmp_path / "keys" / "alice")
    await alice.ok(
        "POST", "/api/user/keys", {"name": "k", "public_key": key.public, "kind": "person"}, 201
    )
    box = await alice.ok("POST", "/api/containers", {"name": "sandbox"}, 201)
    return alice, key, box["id"]


async def test_stopped_container_is_a_clear_failure(
    chub: SshHub, alice_box: tuple[Api, Key, str]
) -> None:
    import docker

    alice, key, box = alice_box
    short = (await run_ssh(chub, key, box, "hostname")).stdout.strip()  # the engine's id

    def stop() -> None:
        client = docker.from_env()
        try:
            client.containers.get(short).stop(timeout=0)
        finally:
            client.close()

    await asyncio.to_thread(stop)
    stopped = "rexec: The container is stopped; delete it and create another."
    for target in (box, "sandbox"):
        done = await run_ssh(chub, key, target, "true")
        assert (done.code, done.stdout, done.stderr) == (1, "", stopped + "\n"), done
    child = spawn(chub, key, box, timeout=30)
    child.expect(stopped)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    code, body = await alice.call("POST", f"/api/containers/{box}/exec", {"cmd": "true"})
    assert_error(code, body, 409, "container_stopped")


async def test_deleting_the_container_ends_ssh(
    chub: SshHub, alice_box: tuple[Api, Key, str]
) -> None:
    alice, key, box = alice_box
    child = spawn(chub, key, "sandbox", timeout=30)
    try:
        child.sendline("echo up-$((1+1))")
        child.expect("up-2")
        async with running_command(chub, key, box) as command:
            await alice.ok("DELETE", f"/api/containers/{box}", status=204)
            await command_ended(command, "The container was deleted.")
            ended_with(child, "The container was deleted.")
    finally:
        child.close()


async def test_a_running_command_keeps_the_container_from_idling(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    idle = {"REXEC_CONTAINER_IDLE_TIMEOUT": "3", "REXEC_REAPER_INTERVAL": "0.2"}
    async with container_hub(tmp_path / "idle", **idle) as hub:
        alice = await Api(http, hub.url).sign_up("alice@example.com")
        key = make_key(tmp_path / "keys" / "alice")
        await alice.ok(
            "POST", "/api/user/keys", {"name": "k", "public_key": key.public, "kind": "person"}, 201
        )
        box = await alice.ok("POST", "/api/containers", {}, 201)
        done = await run_ssh(hub, key, box["id"], "sh", "-c", "'sleep 5; echo still-here'")
        assert (done.code, done.stdout) == (0, "still-here\n"), done

        # Idle again once it ended: the reaper takes the container.
        async def reaped() -> bool:
            code, _ = await alice.call("GET", f"/api/containers/{box['id']}")
            return code == 404

        await wait_for(reaped, 15, interval=0.2, what="the idle container reaped")


async def test_sftp_to_a_container_without_sftp_server_is_a_clear_failure(
    chub: SshHub, alice_box: tuple[Api, Key, str], tmp_path: Path
) -> None:
    _, key, box = alice_box  # busybox: no sftp-server
    done = await run_argv(scp_argv(chub, key, f"{box}@127.0.0.1:/etc/passwd", str(tmp_path)))
    assert done.code != 0, done
    assert "rexec: This target has no sftp-server for sftp and scp" in done.stderr, done


async def test_scp_and_sftp_to_a_debian_container_round_trip_10_mb(
    chub: SshHub, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The Debian image ships OpenSSH's sftp-server: scp and sftp work into it."""
    alice = await Api(http, chub.url).sign_up("alice@example.com")
    key = make_key(tmp_path / "keys" / "alice")
    person = {"name": "k", "public_key": key.public, "kind": "person"}
    await alice.ok("POST", "/api/user/keys", person, 201)
    box = (await alice.ok("POST", "/api/containers", {"image": "debian"}, 201))["id"]
    payload = os.urandom(10 << 20)
    local = tmp_path / "payload.bin"
    local.write_bytes(payload)
    up = await run_argv(scp_argv(chub, key, str(local), f"{box}@127.0.0.1:/home/rexec/up.bin"))
    assert up.code == 0, up
    back = tmp_path / "back.bin"
    down = await run_argv(scp_argv(chub, key, f"{box}@127.0.0.1:/home/rexec/up.bin", str(back)))
    assert down.code == 0, down
    assert back.read_bytes() == payload

    argv = scp_argv(chub, key)  # options only: sftp takes the same ones
    argv = [SFTP, *argv[1:], "-b", "-", f"{box}@127.0.0.1"]
    batch = b"cd /home/rexec\nrename up.bin moved.bin\nls -1\nrm moved.bin\nls -1\n"
    done = await run_argv(argv, batch)
    assert done.code == 0, done
    listed = [line for line in done.stdout.splitlines() if line == "moved.bin"]
    assert len(listed) == 1, done  # listed once by the first `ls`, gone by the second
