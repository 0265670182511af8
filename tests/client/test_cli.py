"""`rexec` as a real process against a real hub: accounts, containers, agents, errors,
completion and help."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import stat
import struct
import subprocess
import time
from pathlib import Path

import pexpect

from client.sdk import AsyncClient
from tests.client.conftest import EMAIL, PASSWORD, Agent, Cli, assert_one_line_error
from tests.support import BIN, Api, Hub, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_login_whoami_logout(cli: Cli, alice: Api) -> None:
    out = await cli.ok("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    assert out.strip() == f"Signed in to {cli.hub} as {EMAIL}."
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700
    stored = json.loads(cli.credentials.read_text())
    assert stored["default_hub"] == cli.hub
    refresh = stored["hubs"][cli.hub]["refresh_token"]

    who = await cli.ok("whoami")
    assert EMAIL in who and "usr_" in who
    assert json.loads(await cli.ok("whoami", "--json"))["email"] == EMAIL
    # With no REXEC_HUB, the hub signed in to last is the default.
    env = cli.env()
    env.pop("REXEC_HUB")
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "rexec"), "whoami", env=env, stdout=asyncio.subprocess.PIPE
    )
    assert EMAIL in (await proc.communicate())[0].decode() and proc.returncode == 0

    assert (await cli.ok("logout")).strip() == f"Signed out of {cli.hub}."
    assert cli.hub not in json.loads(cli.credentials.read_text())["hubs"]
    code, body = await alice.call("POST", "/api/refresh", {"refresh_token": refresh})
    assert code == 401, body  # the hub revoked the family
    assert_one_line_error(await cli("whoami"), "rexec login")
    assert (await cli("whoami")).code == 3


async def test_logout_everywhere_revoking_tokens(cli: Cli, alice: Api) -> None:
    token = (await alice.ok("POST", "/api/user/tokens", {"name": "ci"}, 201))["token"]
    as_token = Api(alice.http, alice.base, token)
    usage = await cli("logout", "--revoke-tokens")
    assert usage.code == 2 and "--everywhere" in usage.err
    await cli.ok("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    await cli.ok("logout", "--everywhere")
    await as_token.ok("GET", "/api/user")  # API tokens survive a plain "everywhere"
    status, _ = await alice.call("GET", "/api/user")  # every sign-in ended, this one too
    assert status == 401
    await cli.ok("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    await cli.ok("logout", "--everywhere", "--revoke-tokens")
    status, _ = await as_token.call("GET", "/api/user")
    assert status == 401


async def test_wrong_credentials_unknown_ids_and_a_hub_that_is_down(
    signed_in: Cli, chub: Hub
) -> None:
    cli = signed_in
    wrong = await cli("login", "-e", EMAIL, "--password-stdin", stdin="nope nope nope\n")
    assert_one_line_error(wrong, "invalid_credentials")
    assert wrong.code == 3
    assert "Traceback" not in wrong.out

    missing = await cli("containers", "rm", "ctr_doesnotexist")
    assert_one_line_error(missing, "not_found")
    assert missing.code == 4
    exec_missing = await cli("containers", "exec", "ctr_doesnotexist", "--", "true")
    assert_one_line_error(exec_missing, "not_found")
    assert exec_missing.code == 4  # docs/cli.md: not found, even for exec
    by_name = await cli("agents", "exec", "nosuchname", "--", "true")
    assert_one_line_error(by_name, "agent_not_found")
    assert by_name.code == 4
    connect_missing = await cli("connect", "ctr_doesnotexist")
    assert_one_line_error(connect_missing, "not_found")
    assert connect_missing.code == 4
    play_missing = await cli("sessions", "play", "ses_doesnotexist")
    assert_one_line_error(play_missing, "not_found")

    down = f"http://127.0.0.1:{free_port()}"
    for args in (["whoami"], ["containers", "ls"], ["sessions", "ls"]):
        result = await cli("--hub", down, *args, env={"REXEC_TOKEN": "rx_anything"})
        assert_one_line_error(result, "Cannot reach the hub", down)
        assert result.code == 5
    result = await cli("--hub", down, "login", "-e", EMAIL, "--password-stdin", stdin="x\n")
    assert_one_line_error(result, "Cannot reach the hub")
    result = await cli(
        "--hub", down, "containers", "exec", "ctr_x", "--", "true", env={"REXEC_TOKEN": "x"}
    )
    assert_one_line_error(result, "Cannot reach the hub")
    assert result.code == 255
    not_signed = await cli("--hub", down, "containers", "ls")
    assert_one_line_error(not_signed, "rexec login")
    assert not_signed.code == 3
    bad_url = await cli("--hub", "ftp://nowhere", "whoami")
    assert_one_line_error(bad_url, "not a hub URL")
    assert bad_url.code == 2


async def test_containers_create_ls_exec_rm(signed_in: Cli, alice: Api) -> None:
    cli = signed_in
    cid = (await cli.ok("containers", "create", "--name", "clibox", "--env", "GREETING=hi")).strip()
    assert cid.startswith("ctr_")
    listed = json.loads(await cli.ok("containers", "ls", "--json"))
    api_listed = await alice.ok("GET", "/api/containers")
    assert [c["id"] for c in listed["containers"]] == [c["id"] for c in api_listed["containers"]]
    assert listed["containers"][0]["name"] == "clibox"
    table = await cli.ok("containers", "ls")
    assert table.splitlines()[0].split()[:4] == ["ID", "NAME", "IMAGE", "STATUS"]
    assert cid in table and "running" in table
    assert (await cli.ok("containers", "ls", "-q")).split() == [cid]

    four = await cli("containers", "exec", cid, "--", "sh", "-c", "exit 4")
    assert four.code == 4, str(four)
    both = await cli(
        "containers", "exec", cid, "--", "sh", "-c", "echo $GREETING; echo e >&2; exit 2"
    )
    assert (both.code, both.out, both.err) == (2, "hi\n", "e\n")
    named = await cli("containers", "exec", "clibox", "--", "sh", "-c", "echo by name; exit 5")
    assert (named.code, named.out) == (5, "by name\n"), str(named)
    fed = await cli("containers", "exec", cid, "--", "tr", "a-z", "A-Z", stdin="shout\n")
    assert (fed.code, fed.out) == (0, "SHOUT\n")
    result = json.loads(await cli.ok("containers", "exec", "--json", cid, "--", "echo", "j"))
    assert result["exit_code"] == 0 and result["stdout"] == "j\n"
    slow = await cli("containers", "exec", "--timeout", "1", cid, "--", "sleep", "30")
    assert slow.code == 124 and "timed out" in slow.err

    assert (await cli.ok("containers", "rm", cid)).split() == [cid]
    assert (await alice.ok("GET", "/api/containers"))["containers"] == []


async def test_agents_ls_token_rm(signed_in: Cli, alice: Api, agent: Agent) -> None:
    cli = signed_in

    async def with_metrics() -> dict[str, object] | None:
        listed = json.loads(await cli.ok("agents", "ls", "--json"))["agents"]
        return listed[0] if listed and listed[0]["metrics"] else None

    entry = await wait_for(with_metrics, 20, what="agent metrics in `rexec agents ls --json`")
    assert entry["id"] == agent.id and entry["status"] == "online"
    table = await cli.ok("agents", "ls")
    assert agent.id in table and "online" in table and "%" in table

    token = await cli("agents", "token", "--name", "next")
    assert token.code == 0 and token.out.strip().startswith("rxa_")
    assert "install.sh" in token.err and token.out.strip() in token.err
    as_json = json.loads(await cli.ok("agents", "token", "--json"))
    assert set(as_json) >= {"token", "expires_at", "install_command"}

    name = (await alice.ok("GET", f"/api/agents/{agent.id}"))["name"]
    named = await cli("agents", "exec", name, "--", "sh", "-c", "echo on $0; exit 6")
    assert (named.code, named.out) == (6, "on sh\n"), str(named)

    assert (await cli.ok("agents", "rm", agent.id)).split() == [agent.id]
    assert (await alice.ok("GET", "/api/agents"))["agents"] == []
    assert (await cli("agents", "rm", agent.id)).code == 4


async def test_ssh_config_is_valid_for_openssh(
    signed_in: Cli, container: str, tmp_path: Path
) -> None:
    text = await signed_in.ok("ssh-config")
    assert "Port 2222" in text and f"User {container}" in text
    config = tmp_path / "ssh_config"
    config.write_text(text)
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(config), "rexec-sandbox"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout.splitlines()  # fmt: skip
    assert "port 2222" in resolved and f"user {container}" in resolved
    assert "hostname 127.0.0.1" in resolved
    only = await signed_in.ok("ssh-config", "sandbox", "--port", "2200")
    assert only.count("Host ") == 1 and "Port 2200" in only
    assert (await signed_in("ssh-config", "nothing-named-so")).code == 4


async def test_help_version_and_completion(signed_in: Cli, container: str) -> None:
    cli = signed_in
    commands = [
        [], ["login"], ["logout"], ["whoami"], ["connect"], ["ssh-config"], ["completion"],
        ["containers"], ["containers", "create"], ["containers", "ls"], ["containers", "rm"],
        ["containers", "exec"], ["agents"], ["agents", "ls"], ["agents", "token"],
        ["agents", "rm"], ["agents", "exec"], ["sessions"], ["sessions", "ls"],
        ["sessions", "play"], ["sessions", "download"], ["sessions", "share"], ["sessions", "end"],
    ]  # fmt: skip
    for args in commands:
        out = await cli.ok(*args, "--help")
        assert out.startswith("Usage: rexec"), (args, out)
    assert (await cli.ok("--version")).strip() == "rexec 0.1.0"
    usage = await cli("containers", "create", "--cpus", "lots")
    assert usage.code == 2 and "Traceback" not in usage.err

    script = await cli.ok("completion", "bash")
    assert "_REXEC_COMPLETE" in script and "complete " in script
    for shell in ("zsh", "fish"):
        assert "_REXEC_COMPLETE" in await cli.ok("completion", shell)
    words = await cli(
        env={"_REXEC_COMPLETE": "bash_complete", "COMP_WORDS": "rexec contai", "COMP_CWORD": "1"}
    )
    assert "containers" in words.out
    ids = await cli(
        env={
            "_REXEC_COMPLETE": "bash_complete",
            "COMP_WORDS": "rexec containers rm ctr_",
            "COMP_CWORD": "3",
        }
    )
    assert container in ids.out, str(ids)


async def test_login_with_tokens(cli: Cli, chub: Hub, alice: Api) -> None:
    assert alice.token
    out = await cli.ok("login", "--token", alice.token)  # an access token is a bearer token too
    assert "with a token" in out and EMAIL in out
    assert json.loads(await cli.ok("whoami", "--json"))["email"] == EMAIL
    async with AsyncClient(chub.url, token=alice.token) as rx:
        api_token = await rx.tokens.create("cli test")
    assert api_token.token and api_token.token.startswith("rx_")
    await cli.ok("login", "--token", "-", stdin=api_token.token + "\n")
    assert EMAIL in await cli.ok("whoami")
    stored = json.loads(cli.credentials.read_text())["hubs"][cli.hub]
    assert stored["access_token"] == api_token.token and stored["refresh_token"] is None
    refused = await cli("login", "--token", "rx_not_a_real_token")
    assert_one_line_error(refused)
    assert refused.code == 3
    assert EMAIL in await cli.ok("whoami")  # a refused token does not replace a good one


async def test_refresh_once_across_processes(signed_in: Cli) -> None:
    cli = signed_in
    data = json.loads(cli.credentials.read_text())
    entry = data["hubs"][cli.hub]
    old_refresh = entry["refresh_token"]
    entry["access_token"] = "expired-or-garbage"
    cli.credentials.write_text(json.dumps(data))
    results = await asyncio.gather(*(cli("whoami") for _ in range(4)))
    assert all(r.code == 0 and EMAIL in r.out for r in results), [str(r) for r in results]
    renewed = json.loads(cli.credentials.read_text())["hubs"][cli.hub]
    assert renewed["refresh_token"] != old_refresh
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert EMAIL in await cli.ok("whoami")  # the family was not revoked by a reuse


def totp(secret: str, at: float) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s), as an authenticator app computes it."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at // 30)), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 1_000_000).zfill(6)


async def test_login_prompts_for_the_passcode(cli: Cli, chub: Hub, alice: Api) -> None:
    async with AsyncClient(chub.url, token=alice.token) as rx:
        setup = await rx.passcode_setup()
        assert setup.secret and setup.otpauth_uri.startswith("otpauth://")
        recovery = await rx.passcode_confirm(totp(setup.secret, time.time()))
        assert (await rx.user()).passcode_enabled
    assert recovery

    def interactive(passcode: str) -> tuple[str, int]:
        child = pexpect.spawn(
            str(BIN / "rexec"), ["login"], env=cli.env(), encoding="utf-8", timeout=30
        )
        child.expect("Email: ")
        child.sendline(EMAIL)
        child.expect("Password: ")
        child.sendline(PASSWORD)
        child.expect("Passcode: ")
        child.sendline(passcode)
        child.expect(pexpect.EOF)
        child.close()
        return str(child.before), int(child.exitstatus or 0)

    out, code = await asyncio.to_thread(interactive, "000000")
    assert code == 3 and "passcode_required" in out and "Traceback" not in out
    out, code = await asyncio.to_thread(interactive, recovery[0])
    assert code == 0 and f"Signed in to {cli.hub} as {EMAIL}." in out
    assert EMAIL in await cli.ok("whoami")
