"""A real hub with its SSH gateway on 127.0.0.1 (a free port), a real agent, and
OpenSSH's own `ssh` client with a throwaway key pair."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pexpect
import pytest

from tests.e2e.conftest import RunningAgent, agent, register_agent, start_agent  # noqa: F401
from tests.support import Api, Hub

SSH = shutil.which("ssh") or "/usr/bin/ssh"
SCP = shutil.which("scp") or "/usr/bin/scp"
SFTP = shutil.which("sftp") or "/usr/bin/sftp"


class SshHub(Hub):
    """`rexec-hub serve` with the gateway on a free port, read from its output."""

    ssh_port = 0

    async def started(self) -> None:
        assert self.proc is not None
        m = await self.proc.read_until(r"ssh gateway on 127\.0\.0\.1:(\d+)")
        self.ssh_port = int(m.group(1))


@dataclass
class Key:
    private: Path
    public: str


def make_key(path: Path) -> Key:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test@rexec", "-f", str(path)],
        check=True,
        timeout=30,
    )
    return Key(path, path.with_suffix(".pub").read_text().strip())


def ssh_argv(hub: SshHub, key: Key, target: str, *command: str) -> list[str]:
    argv = [
        SSH,
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR",
        "-F", "/dev/null",
        "-i", str(key.private),
        "-p", str(hub.ssh_port),
        f"{target}@127.0.0.1",
    ]  # fmt: skip
    return [*argv, "--", *command] if command else argv


def scp_argv(hub: SshHub, key: Key, *paths: str) -> list[str]:
    """OpenSSH's `scp` (SFTP underneath, as current OpenSSH does) with ssh_argv's options."""
    argv = ssh_argv(hub, key, "x")
    options = argv[1 : argv.index("-p")]
    return [SCP, *options, "-P", str(hub.ssh_port), *paths]


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str


async def run_argv(argv: list[str], stdin: bytes | None = None, timeout: float = 60) -> Done:
    """A client (ssh, scp, sftp) run to its end, with a bound."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv} hung") from None
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def run_ssh(hub: SshHub, key: Key, target: str, *command: str, timeout: float = 30) -> Done:
    return await run_argv(ssh_argv(hub, key, target, *command), timeout=timeout)


TERM = "vt220"  # not the gateway's default, so a TERM that does not arrive shows
LANG = "C.UTF-8"


def spawn(hub: SshHub, key: Key, target: str, timeout: float = 20) -> pexpect.spawn[str]:
    """`ssh` under a real pty, sending TERM (with pty-req) and LANG (env)."""
    argv = ssh_argv(hub, key, target)
    argv[1:1] = ["-o", "SendEnv=LANG"]
    env = {**os.environ, "TERM": TERM, "LANG": LANG}
    return pexpect.spawn(argv[0], argv[1:], timeout=timeout, dimensions=(24, 80), env=env)


def ended_with(child: pexpect.spawn[str], message: str) -> None:
    """The interactive client printed `rexec: message` once, then ssh exited 255."""
    child.expect(f"rexec: {message}", timeout=10)
    child.expect(pexpect.EOF, timeout=10)
    child.close()
    assert child.exitstatus == 255, child.exitstatus
    assert "rexec:" not in str(child.before), child.before  # one line, not two


@contextlib.asynccontextmanager
async def running_command(
    hub: SshHub, key: Key, target: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`ssh TARGET -- ...` running a long command (it has printed `started`)."""
    proc = await asyncio.create_subprocess_exec(
        *ssh_argv(hub, key, target, "sh", "-c", "'echo started; exec sleep 120'"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"started\n"
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def command_ended(proc: asyncio.subprocess.Process, message: str) -> None:
    """The command's ssh exited 255 within seconds with exactly `rexec: message`."""
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert (proc.returncode, err.decode()) == (255, f"rexec: {message}\n")


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[SshHub]:
    h = await SshHub(tmp_path / "hub").start()
    yield h
    h.kill()


@pytest.fixture
async def owner(hub: SshHub, http: aiohttp.ClientSession) -> Api:
    return await Api(http, hub.url).sign_up("owner@example.com")


@pytest.fixture
async def key(owner: Api, tmp_path: Path) -> Key:
    k = make_key(tmp_path / "keys" / "owner")
    await owner.ok(
        "POST", "/api/user/keys", {"name": "laptop", "public_key": k.public, "kind": "person"}, 201
    )
    return k
