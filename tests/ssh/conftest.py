"""A real hub with its SSH gateway on 127.0.0.1 (a free port), a real agent, and
OpenSSH's own `ssh` client with a throwaway key pair."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import RunningAgent, agent, register_agent, start_agent  # noqa: F401
from tests.support import Api, Hub

SSH = shutil.which("ssh") or "/usr/bin/ssh"


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


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str


async def run_ssh(hub: SshHub, key: Key, target: str, *command: str, timeout: float = 30) -> Done:
    proc = await asyncio.create_subprocess_exec(
        *ssh_argv(hub, key, target, *command),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"ssh {target} {command} hung") from None
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[SshHub]:
    h = await SshHub(tmp_path / "hub").start()
    yield h
    h.kill()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def owner(hub: SshHub, http: aiohttp.ClientSession) -> Api:
    return await Api(http, hub.url).sign_up("owner@example.com")


@pytest.fixture
async def key(owner: Api, tmp_path: Path) -> Key:
    k = make_key(tmp_path / "keys" / "owner")
    await owner.ok("POST", "/api/user/keys", {"name": "laptop", "public_key": k.public}, 201)
    return k
