"""Acceptance: OpenSSH's `ssh` client, a real hub with its gateway, and a real agent."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import aiohttp
import pexpect
import pytest
from websockets.asyncio.client import connect

from hub.ssh.gateway import SFTP_SERVERS
from tests.e2e.conftest import RunningAgent
from tests.e2e.test_sessions import asciinema_cat, download
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
    ssh_argv,
)
from tests.support import BIN, Api, Hub, Proc, assert_error, wait_for

# -- the keys API ---------------------------------------------------------------------


async def test_keys_api(
    owner: Api, http: aiohttp.ClientSession, hub: SshHub, tmp_path: Path
) -> None:
    k = make_key(tmp_path / "k1")
    made = await owner.ok("POST", "/api/user/keys", {"name": "laptop", "public_key": k.public}, 201)
    assert set(made) == {"id", "name", "fingerprint", "kind"} and made["id"].startswith("key_")
    assert made["kind"] == "agent"  # the default: the targets' policies apply to it
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(k.private.with_suffix(".pub"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert made["fingerprint"] == expected and expected.startswith("SHA256:")

    code, body = await owner.call(
        "POST", "/api/user/keys", {"name": "again", "public_key": k.public}
    )
    assert_error(code, body, 409)
    for bad in ("not a key", "ssh-ed25519 AAAAnotbase64!!", ""):
        code, body = await owner.call("POST", "/api/user/keys", {"name": "x", "public_key": bad})
        assert_error(code, body, 400, "invalid_request")
        assert body["error"]["details"]["field"] == "public_key", body
    code, body = await owner.call("POST", "/api/user/keys", {"public_key": k.public})
    assert_error(code, body, 400, "invalid_request")

    listed = (await owner.ok("GET", "/api/user/keys"))["keys"]
    assert [x["id"] for x in listed] == [made["id"]]
    assert listed[0]["fingerprint"] == expected and listed[0]["kind"] == "agent"
    assert (await owner.ok("GET", f"/api/user/keys/{made['id']}"))["name"] == "laptop"

    other = await Api(http, hub.url).sign_up("other@example.com")
    for method in ("GET", "DELETE"):
        code, body = await other.call(method, f"/api/user/keys/{made['id']}")
        assert_error(code, body, 404)
    # Keys are unique per account: another account's key tells this one nothing.
    await other.ok("POST", "/api/user/keys", {"name": "x", "public_key": k.public}, 201)

    await owner.ok("DELETE", f"/api/user/keys/{made['id']}", status=204)
    assert (await owner.ok("GET", "/api/user/keys"))["keys"] == []
    code, body = await Api(http, hub.url).call("GET", "/api/user/keys")
    assert_error(code, body, 401)


async def test_a_key_someone_else_registered_first_still_works_for_its_owner(
    hub: SshHub, owner: Api, http: aiohttp.ClientSession, agent: RunningAgent, tmp_path: Path
) -> None:
    mine = make_key(tmp_path / "keys" / "mine")
    squatter = await Api(http, hub.url).sign_up("squatter@example.com")
    await squatter.ok(
        "POST", "/api/user/keys", {"name": "not mine", "public_key": mine.public}, 201
    )
    await owner.ok("POST", "/api/user/keys", {"name": "laptop", "public_key": mine.public}, 201)
    done = await run_ssh(hub, mine, agent.id, "echo", "still-mine")
    assert (done.code, done.stdout) == (0, "still-mine\n"), done
    # The squatter's copy opens nothing of the owner's for anyone else.
    listed = (await squatter.ok("GET", "/api/user/keys"))["keys"]
    assert listed[0]["last_used_at"] is None


async def test_host_key_kept_and_fingerprint_printed(hub: SshHub) -> None:
    path = hub.data_dir / "ssh_host_ed25519_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    done = subprocess.run(
        [str(BIN / "rexec-hub"), "ssh-fingerprint", "--data-dir", str(hub.data_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    fingerprint = done.stdout.strip()
    assert fingerprint.startswith("SHA256:")
    proc = hub.proc
    assert proc is not None
    await wait_for(lambda: fingerprint in proc.output(), 10, what="fingerprint in the log")
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(hub.ssh_port), "-t", "ed25519", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    keyline = scanned.strip().split(None, 1)[1]
    printed = subprocess.run(
        ["ssh-keygen", "-lf", "-"], input=keyline, capture_output=True, text=True, check=True
    ).stdout
    assert fingerprint in printed


# -- exec -----------------------------------------------------------------------------


async def test_exec_separates_streams_and_returns_status(
    hub: SshHub, key: Key, agent: RunningAgent, owner: Api
) -> None:
    done = await run_ssh(hub, key, agent.id, "sh", "-c", "'echo out; echo err >&2; exit 3'")
    assert (done.code, done.stdout, done.stderr) == (3, "out\n", "err\n")
    name = (await owner.ok("GET", f"/api/agents/{agent.id}"))["name"]
    done = await run_ssh(hub, key, name, "echo", "by-name")
    assert (done.code, done.stdout) == (0, "by-name\n"), done


async def test_exec_reads_stdin(hub: SshHub, key: Key, agent: RunningAgent) -> None:
    proc = await asyncio.create_subprocess_exec(
        *ssh_argv(hub, key, agent.id, "tr", "a-z", "A-Z"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(b"hello\n"), 30)
    assert (proc.returncode, out) == (0, b"HELLO\n"), err


async def test_exec_stdin_is_paced_not_dropped(hub: SshHub, key: Key, agent: RunningAgent) -> None:
    """Megabytes into a program that does not read for a while: all of it arrives (the
    agent credits input as the program takes it; it used to drop past 1 MiB)."""
    payload = os.urandom(6 << 20)
    argv = ssh_argv(hub, key, agent.id, "sh", "-c", "'sleep 1; sha256sum'")
    done = await run_argv(argv, payload)
    assert done.code == 0, done
    assert done.stdout.split()[0] == hashlib.sha256(payload).hexdigest()


# -- failures -------------------------------------------------------------------------


async def test_clear_failures(
    hub: SshHub, key: Key, agent: RunningAgent, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    missing = await run_ssh(hub, key, "agt_doesnotexist", "true")
    assert missing.code != 0 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "No such target" in missing.stderr, missing
    assert "Traceback" not in missing.stderr
    by_name = await run_ssh(hub, key, "nosuchname", "true")
    assert by_name.code != 0 and "No such target" in by_name.stderr

    other = await Api(http, hub.url).sign_up("other@example.com")
    other_key = make_key(tmp_path / "keys" / "other")
    await other.ok(
        "POST",
        "/api/user/keys",
        {"name": "k", "public_key": other_key.public, "kind": "person"},
        201,
    )
    theirs = await run_ssh(hub, other_key, agent.id, "true")
    assert theirs.code == missing.code
    assert theirs.stderr == missing.stderr.replace("agt_doesnotexist", agent.id)

    stranger = make_key(tmp_path / "keys" / "stranger")
    refused = await run_ssh(hub, stranger, agent.id, "true")
    assert refused.code == 255 and "Permission denied" in refused.stderr, refused

    agent.proc.kill()

    async def offline() -> bool:
        done = await run_ssh(hub, key, agent.id, "true")
        return done.code != 0 and "offline" in done.stderr

    await wait_for(offline, 20, interval=0.2, what="the offline agent refused")


async def test_forwarding_refused(hub: SshHub, key: Key, agent: RunningAgent) -> None:
    argv = ssh_argv(hub, key, agent.id, "true")
    argv[1:1] = ["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 255 and b"forwarding failed" in err.lower(), err


# -- interactive ----------------------------------------------------------------------


async def live_sessions(owner: Api, target: str) -> list[str]:
    sessions = (await owner.ok("GET", "/api/sessions"))["sessions"]
    return [s["id"] for s in sessions if s["target"] == target and s["status"] == "live"]


async def test_interactive_shell(
    hub: SshHub, key: Key, agent: RunningAgent, owner: Api, tmp_path: Path
) -> None:
    child = spawn(hub, key, agent.id)
    try:
        child.sendline("echo $((6*7))")
        child.expect("42\r\n")
        child.setwinsize(40, 120)
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("echo env:$TERM:$LANG")
        child.expect(f"env:{TERM}:{LANG}")
        (session_id,) = await live_sessions(owner, agent.id)
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5

    async def recorded() -> bool:
        code, body = await owner.call("GET", f"/api/sessions/{session_id}")
        return code == 200 and body["status"] == "ended" and body["recording"]["available"]

    await wait_for(recorded, 10, what="the session ended and recorded")
    cast = await download(owner, session_id, tmp_path / "ssh.cast")
    header = json.loads(cast.read_text().splitlines()[0])
    assert header["version"] == 2
    played = asciinema_cat(cast)  # asciinema's own player
    assert re.search(r"echo \$\(\(6\*7\)\)\n(\x1b\[\?2004l)?42\n", played), played
    assert "40 120" in played, played


async def test_browser_joins_ssh_session_and_back(
    hub: SshHub, key: Key, agent: RunningAgent, owner: Api
) -> None:
    assert owner.token
    child = spawn(hub, key, agent.id)
    try:
        child.sendline("echo ready-$((2+2))")
        child.expect("ready-4")  # output of the shell, not the local echo of the typing
        (session_id,) = await live_sessions(owner, agent.id)
        url = (
            f"ws://127.0.0.1:{hub.port}/ws/terminal/{agent.id}"
            f"?token={owner.token}&session={session_id}"
        )
        async with connect(url, compression=None) as ws:
            first = json.loads(await ws.recv())
            assert first["type"] == "session" and first["id"] == session_id
            child.sendline("echo joined-$((40+2))")
            out = b""
            async with asyncio.timeout(15):
                while b"joined-42" not in out:
                    msg = await ws.recv()
                    if isinstance(msg, bytes):
                        out += msg
            await ws.send(b"echo from-browser-$((1+1))\n")
            child.expect("from-browser-2")
    finally:
        child.close()

    # The reverse: an SSH user joins a session a browser opened.
    async with connect(
        f"ws://127.0.0.1:{hub.port}/ws/terminal/{agent.id}?token={owner.token}", compression=None
    ) as ws:
        first = json.loads(await ws.recv())
        joiner = spawn(hub, key, first["id"])
        try:
            await ws.send(b"echo browser-says-$((3*3))\n")
            joiner.expect("browser-says-9")
            joiner.sendline("exit 7")
            joiner.expect(pexpect.EOF)
        finally:
            joiner.close()
        assert joiner.exitstatus == 7

    other_session = await run_ssh(hub, key, "ses_doesnotexist")
    assert other_session.code != 0 and "No live session" in other_session.stderr


async def test_failed_authentications_are_rate_limited(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    limits = json.dumps({"ssh_auth_failures": "3/600"})
    hub = await SshHub(tmp_path / "limited", env={"REXEC_RATE_LIMITS": limits}).start()
    try:
        owner = await Api(http, hub.url).sign_up("owner@example.com")
        good = make_key(tmp_path / "keys" / "good")
        await owner.ok(
            "POST",
            "/api/user/keys",
            {"name": "k", "public_key": good.public, "kind": "person"},
            201,
        )
        box = await run_ssh(hub, good, "nosuch", "true")  # authenticates; no such target
        assert box.code == 1 and "No such target" in box.stderr, box
        stranger = make_key(tmp_path / "keys" / "stranger")
        for _ in range(3):
            refused = await run_ssh(hub, stranger, "nosuch", "true")
            assert refused.code == 255 and "Permission denied" in refused.stderr
        limited = await run_ssh(hub, good, "nosuch", "true")
        assert limited.code == 255 and "Permission denied" in limited.stderr, limited
        proc = hub.proc
        assert proc is not None
        await wait_for(
            lambda: "too many failed authentications" in proc.output(), 10, what="the log line"
        )
    finally:
        hub.kill()


# -- access ends ----------------------------------------------------------------------


async def key_id(api: Api, name: str) -> str:
    keys = (await api.ok("GET", "/api/user/keys"))["keys"]
    return next(k["id"] for k in keys if k["name"] == name)


async def test_removing_a_key_ends_its_connections(
    hub: SshHub, key: Key, agent: RunningAgent, owner: Api, tmp_path: Path
) -> None:
    spare = make_key(tmp_path / "keys" / "spare")
    await owner.ok(
        "POST",
        "/api/user/keys",
        {"name": "spare", "public_key": spare.public, "kind": "person"},
        201,
    )
    child, other = spawn(hub, key, agent.id), spawn(hub, spare, agent.id)
    try:
        for c in (child, other):
            c.sendline("echo up-$((1+1))")
            c.expect("up-2")
        async with running_command(hub, key, agent.id) as command:
            await owner.ok("DELETE", f"/api/user/keys/{await key_id(owner, 'laptop')}", status=204)
            message = "The SSH key of this connection was removed."
            await command_ended(command, message)
            ended_with(child, message)
        other.sendline("echo still-$((2+3))")  # the other key's connection is untouched
        other.expect("still-5")
    finally:
        child.close()
        other.close()
    refused = await run_ssh(hub, key, agent.id, "true")
    assert refused.code == 255 and "Permission denied" in refused.stderr, refused


async def test_signing_out_everywhere_ends_ssh(
    hub: SshHub, key: Key, agent: RunningAgent, owner: Api
) -> None:
    login = {"email": "owner@example.com", "password": "correct horse 1"}
    other_sign_in = await owner.ok("POST", "/api/login", login)
    child = spawn(hub, key, agent.id)
    try:
        child.sendline("echo up-$((1+1))")
        child.expect("up-2")
        async with running_command(hub, key, agent.id) as command:
            # Signing out of one sign-in (a browser) leaves SSH alone ...
            body = {"refresh_token": other_sign_in["refresh_token"]}
            await owner.ok("POST", "/api/logout", body, status=204)
            child.sendline("echo still-$((2+3))")
            child.expect("still-5")
            assert command.returncode is None
            # ... signing out everywhere ends it.
            await owner.ok("POST", "/api/logout", status=204)
            await command_ended(command, "Signed out.")
            ended_with(child, "Signed out.")
    finally:
        child.close()


async def test_deleting_the_agent_ends_ssh(
    hub: SshHub, key: Key, agent: RunningAgent, owner: Api
) -> None:
    child = spawn(hub, key, agent.id)
    try:
        child.sendline("echo up-$((1+1))")
        child.expect("up-2")
        async with running_command(hub, key, agent.id) as command:
            await owner.ok("DELETE", f"/api/agents/{agent.id}", status=204)
            await command_ended(command, "The agent was deleted.")
            ended_with(child, "The agent was deleted.")
    finally:
        child.close()


# -- start-up -------------------------------------------------------------------------


async def test_a_taken_ssh_port_stops_the_hub(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [str(BIN / "rexec-hub"), "serve", "--port", "0", "--data-dir", str(tmp_path)]
        proc = Proc(argv, env={"REXEC_SSH_PORT": str(port)})
        try:
            assert await proc.wait_exit(60) == 1
            assert proc.popen.stdout is not None
            out = proc.popen.stdout.read()
        finally:
            proc.kill()
        assert "Traceback" not in out and "listening on" not in out, out
        last = out.strip().splitlines()[-1]
        assert last.startswith(f"rexec-hub: cannot listen for SSH on 127.0.0.1:{port} "), out
        assert "REXEC_SSH_PORT" in last and "REXEC_SSH_ENABLED=false" in last, last

        # Without the gateway the same hub starts.
        env = {"REXEC_SSH_PORT": str(port), "REXEC_SSH_ENABLED": "false"}
        hub = await Hub(tmp_path, env=env).start()
        hub.kill()


# -- file transfer --------------------------------------------------------------------


async def test_scp_and_sftp_to_an_agent(
    hub: SshHub, key: Key, agent: RunningAgent, tmp_path: Path
) -> None:
    if not any(os.access(p, os.X_OK) for p in SFTP_SERVERS):
        pytest.fail("OpenSSH's sftp-server is missing: apt-get install openssh-sftp-server")
    payload = os.urandom(3 << 20)
    local = tmp_path / "payload.bin"
    local.write_bytes(payload)
    remote = tmp_path / "on-the-agent"  # the agent runs on this machine
    remote.mkdir()
    up = await run_argv(scp_argv(hub, key, str(local), f"{agent.id}@127.0.0.1:{remote}/up.bin"))
    assert up.code == 0, up
    assert (remote / "up.bin").read_bytes() == payload
    back = tmp_path / "back.bin"
    down = await run_argv(scp_argv(hub, key, f"{agent.id}@127.0.0.1:{remote}/up.bin", str(back)))
    assert down.code == 0 and back.read_bytes() == payload, down

    argv = ssh_argv(hub, key, agent.id)
    argv = [SFTP, *argv[1 : argv.index("-p")], "-P", str(hub.ssh_port), "-b", "-"]
    batch = f"cd {remote}\nrename up.bin moved.bin\nls -1\nrm moved.bin\n"
    done = await run_argv([*argv, f"{agent.id}@127.0.0.1"], batch.encode())
    assert done.code == 0 and "moved.bin" in done.stdout, done
    assert list(remote.iterdir()) == []


async def test_sftp_to_another_users_agent_is_refused(
    hub: SshHub, agent: RunningAgent, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    other = await Api(http, hub.url).sign_up("other@example.com")
    other_key = make_key(tmp_path / "keys" / "other")
    await other.ok(
        "POST",
        "/api/user/keys",
        {"name": "k", "public_key": other_key.public, "kind": "person"},
        201,
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("owner only")
    done = await run_argv(scp_argv(hub, other_key, f"{agent.id}@127.0.0.1:{secret}", str(tmp_path)))
    assert done.code != 0 and "No such target" in done.stderr, done
