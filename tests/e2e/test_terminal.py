"""Acceptance: a real hub and agent; a WebSocket client drives a real shell."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from client.sdk import AsyncClient
from tests.e2e.conftest import RunningAgent
from tests.support import Api, Hub, TcpProxy, assert_error


def ws_url(hub: Hub, target: str, token: str, **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{hub.port}/ws/terminal/{target}?token={token}{extra}"


async def read_until(ws: ClientConnection, needle: bytes, timeout: float = 10) -> bytes:
    """Output until `needle` appears; text frames are collected on the side."""
    out = b""
    try:
        async with asyncio.timeout(timeout):
            while needle not in out:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    out += msg
    except TimeoutError:
        raise AssertionError(f"no {needle!r} in {out[-2000:]!r}") from None
    return out


async def test_shell_echo_resize_exit(hub: Hub, owner: Api, agent: RunningAgent) -> None:
    assert owner.token
    async with connect(ws_url(hub, agent.id, owner.token), compression=None) as ws:
        first = json.loads(await ws.recv())
        assert first["type"] == "session" and first["id"].startswith("ses_")
        assert first["role"] == "owner"
        await ws.send(b"echo $((6*7))\n")
        assert b"42\r\n" in await read_until(ws, b"42\r\n")
        await ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        await ws.send(b"stty size\n")
        assert b"40 120" in await read_until(ws, b"40 120")
        await ws.send(b"exit 3\n")
        texts: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            async for msg in ws:
                if isinstance(msg, str):
                    texts.append(json.loads(msg))
        assert texts[-1] == {"type": "exit", "code": 3}
        assert ws.close_code == 1000


async def test_command_and_initial_size(hub: Hub, owner: Api, agent: RunningAgent) -> None:
    assert owner.token
    url = ws_url(hub, agent.id, owner.token, cols="100", rows="30", command="stty%20size")
    async with connect(url, compression=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session"
        out = b""
        exit_msg = None
        async with asyncio.timeout(10):
            async for msg in ws:
                if isinstance(msg, bytes):
                    out += msg
                elif json.loads(msg)["type"] == "exit":
                    exit_msg = json.loads(msg)
    assert b"30 100" in out
    assert exit_msg == {"type": "exit", "code": 0}


async def test_exec_streams_and_exit_code(owner: Api, agent: RunningAgent) -> None:
    result = await owner.ok(
        "POST", f"/api/agents/{agent.id}/exec", {"cmd": "sh -c 'echo out; echo err >&2; exit 3'"}
    )
    assert result["stdout"] == "out\n" and result["stderr"] == "err\n"
    assert result["exit_code"] == 3 and result["timed_out"] is False
    argv = await owner.ok(
        "POST", f"/api/agents/{agent.id}/exec", {"cmd": ["cat"], "stdin": "fed through stdin"}
    )
    assert argv["stdout"] == "fed through stdin" and argv["exit_code"] == 0
    env = await owner.ok(
        "POST",
        f"/api/agents/{agent.id}/exec",
        {"cmd": "echo $GREETING; pwd", "env": {"GREETING": "hello"}, "workdir": "/tmp"},
    )
    assert env["stdout"] == "hello\n/tmp\n"


async def test_exec_timeout_kills_and_output_is_capped(owner: Api, agent: RunningAgent) -> None:
    slow = await owner.ok(
        "POST", f"/api/agents/{agent.id}/exec", {"cmd": "echo started; sleep 30", "timeout": 1}
    )
    assert slow["timed_out"] is True and slow["stdout"] == "started\n"
    assert slow["duration_ms"] < 10_000
    big = await owner.ok(
        "POST", f"/api/agents/{agent.id}/exec", {"cmd": "head -c 3000000 /dev/zero | tr '\\0' x"}
    )
    assert big["exit_code"] == 0 and big["truncated"] is True
    assert len(big["stdout"]) == 1 << 20


async def test_other_users_and_unknown_targets_get_404(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    other = await Api(owner.http, owner.base).sign_up("other@example.com")
    for method, path, body in (
        ("GET", f"/api/agents/{agent.id}", None),
        ("DELETE", f"/api/agents/{agent.id}", None),
        ("POST", f"/api/agents/{agent.id}/exec", {"cmd": "id"}),
        ("GET", "/api/agents/agt_doesnotexist", None),
    ):
        status, answer = await other.call(method, path, body)
        assert_error(status, answer, 404)
    assert (await other.ok("GET", "/api/agents"))["agents"] == []
    assert other.token
    with pytest.raises(Exception) as refused:
        async with connect(ws_url(hub, agent.id, other.token)):
            pass
    assert "404" in str(refused.value)
    with pytest.raises(Exception) as unauth:
        async with connect(ws_url(hub, agent.id, "not-a-token")):
            pass
    assert "401" in str(unauth.value)
    # The owner's agent still answers.
    assert (await owner.ok("GET", f"/api/agents/{agent.id}"))["status"] == "online"


async def test_bad_control_messages_get_error_frames(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    async with connect(ws_url(hub, agent.id, owner.token), compression=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session"
        for bad in ("{nope", '{"type":"resize","cols":0,"rows":5}', '{"type":"launch"}', "[]"):
            await ws.send(bad)
            async with asyncio.timeout(5):
                while True:
                    msg = await ws.recv()
                    if isinstance(msg, str) and json.loads(msg)["type"] == "error":
                        assert json.loads(msg)["code"] == "invalid_request"
                        break
        await ws.send(b"echo still-$((1+1))\n")
        await read_until(ws, b"still-2")


# ---- credentials stay out of the URL (docs/sessions.md, "Credentials") ------------------


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_credentials_in_subprotocols_not_the_url(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    plain = f"ws://127.0.0.1:{hub.port}/ws/terminal/{agent.id}"
    offered = [Subprotocol("rexec"), Subprotocol(f"rexec.bearer.{owner.token}")]
    async with connect(plain, subprotocols=offered, compression=None) as own:
        assert own.subprotocol == "rexec"
        started = json.loads(await own.recv())
        assert started["type"] == "session" and started["role"] == "owner"
        sid = started["id"]
        # A token that is not one is refused before the upgrade, as in the URL.
        bad = [Subprotocol("rexec"), Subprotocol("rexec.bearer.nope")]
        with pytest.raises(InvalidStatus) as refused:
            async with connect(plain, subprotocols=bad):
                pass
        assert refused.value.response.status_code == 401
        # A share's passcode (any text: base64url) rides the same way.
        passcode = "pass wörd 42/+"
        share = await owner.ok(
            "POST", f"/api/sessions/{sid}/share", {"role": "viewer", "passcode": passcode}, 201
        )
        link = f"{plain}?share={share['share']['token']}"
        for wrong in (_b64url("not it at all"), "%%%"):
            offer = [Subprotocol("rexec"), Subprotocol(f"rexec.passcode.{wrong}")]
            with pytest.raises(InvalidStatus) as refused:
                async with connect(link, subprotocols=offer):
                    pass
            assert refused.value.response.status_code in (400, 401)
        guest = [Subprotocol("rexec"), Subprotocol(f"rexec.passcode.{_b64url(passcode)}")]
        async with connect(link, subprotocols=guest) as viewer:
            joined = json.loads(await viewer.recv())
            assert joined["role"] == "viewer" and joined["id"] == sid


async def test_python_client_keeps_credentials_out_of_the_url(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    proxy = await TcpProxy(hub.port).start()
    try:
        base = f"http://127.0.0.1:{proxy.port}"
        async with (
            AsyncClient(base, token=owner.token) as sdk,
            await sdk.attach(agent.id) as term,
        ):
            share = await owner.ok(
                "POST",
                f"/api/sessions/{term.session_id}/share",
                {"role": "viewer", "passcode": "guest pass 99"},
                201,
            )
            where = {"share": share["share"]["token"], "passcode": "guest pass 99"}
            async with AsyncClient(base) as guest, await guest.attach(agent.id, **where) as watch:
                assert watch.role == "viewer"
        request_lines = [
            line for line in bytes(proxy.heard).split(b"\r\n") if line.startswith(b"GET /ws/")
        ]
        assert len(request_lines) == 2, proxy.heard[:2000]
        for line in request_lines:
            assert owner.token.encode() not in line and b"token=" not in line, line
            assert b"passcode" not in line and b"guest" not in line, line
    finally:
        await proxy.close()
