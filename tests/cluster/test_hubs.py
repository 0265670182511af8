"""Acceptance (issue #11): two hubs on one PostgreSQL and one Redis act as one service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from tests.cluster.conftest import Pair, agent_on, api_on
from tests.e2e.test_sessions import assert_every_line_once, first_message, read_numbered, read_until
from tests.support import Api, Hub, TcpProxy, assert_error, rss_of

# Always on PostgreSQL and Redis: the PostgreSQL pass of scripts/test.sh need not repeat it.
pytestmark = pytest.mark.backend_independent

MiB = 1 << 20

StartHub = Callable[[str], Awaitable[Hub]]


async def test_agent_on_a_terminal_through_b(pair: Pair) -> None:
    a, b, on_a, agent_id = pair.a, pair.b, pair.owner, pair.agent_id
    on_b = api_on(b, on_a)  # one secret: a token from hub A works on hub B
    ready = await on_b.ok("GET", "/readyz")
    assert ready["checks"] == {"database": "ok", "redis": "ok"}
    # Hub B knows the agent is online although its link is held by hub A.
    assert (await on_b.ok("GET", f"/api/agents/{agent_id}"))["status"] == "online"
    address = f"ws://127.0.0.1:{b.port}/ws/terminal/{agent_id}?token={on_a.token}"
    async with connect(address, compression=None) as ws:
        sid = (await first_message(ws))["id"]
        await ws.send(b"echo $((6*7))\r")
        await read_until(ws, b"42\r\n")
        # The session is one session: listed by both hubs, joinable through A too.
        for api in (on_a, on_b):
            session = await api.ok("GET", f"/api/sessions/{sid}")
            assert session["status"] == "live" and session["target"] == agent_id
        join = f"ws://127.0.0.1:{a.port}/ws/terminal/{agent_id}?token={on_a.token}"
        async with connect(f"{join}&session={sid}", compression=None) as other:
            await first_message(other)
            await other.send(b"echo from-$((40+2))-a\r")
            await read_until(ws, b"from-42-a")  # typed on A, seen through B
        # Credentials offered as subprotocols (not in the URL) cross the relay too.
        plain = f"ws://127.0.0.1:{b.port}/ws/terminal/{agent_id}?session={sid}"
        offered = [Subprotocol("rexec"), Subprotocol(f"rexec.bearer.{on_a.token}")]
        async with connect(plain, subprotocols=offered, compression=None) as by_protocol:
            assert by_protocol.subprotocol == "rexec"
            await first_message(by_protocol)
    # exec on B runs on the agent behind A.
    result = await on_b.ok("POST", f"/api/agents/{agent_id}/exec", {"cmd": "echo hi; exit 3"})
    assert result["stdout"] == "hi\n" and result["exit_code"] == 3


async def test_refusals_cross_hubs_unchanged(pair: Pair) -> None:
    b, owner, agent_id, agent = pair.b, pair.owner, pair.agent_id, pair.agent
    other = await Api(owner.http, b.url).sign_up("other@example.com")
    assert other.token
    # Another user's agent, reached through the other hub: the same 404 as a missing one.
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{b.port}/ws/terminal/{agent_id}?token={other.token}"):
            pass
    assert refused.value.response.status_code == 404
    status, body = await other.call("POST", f"/api/agents/{agent_id}/exec", {"cmd": "id"})
    assert_error(status, body, 404)
    # Deleting the agent through B closes its link on A; it stops for good.
    status, _ = await api_on(b, owner).call("DELETE", f"/api/agents/{agent_id}")
    assert status == 204
    assert await agent.wait_exit(15) != 0
    assert "deleted" in agent.output()


async def test_sign_out_on_one_hub_closes_sockets_on_the_other(pair: Pair) -> None:
    a, b, owner, agent_id = pair.a, pair.b, pair.owner, pair.agent_id
    http = owner.http
    signed_in = await owner.ok(
        "POST", "/api/login", {"email": "owner@example.com", "password": "correct horse 1"}
    )
    token = signed_in["access_token"]
    async with connect(
        f"ws://127.0.0.1:{a.port}/ws/terminal/{agent_id}?token={token}", compression=None
    ) as ws:
        await first_message(ws)
        out = await Api(http, b.url, token).call(
            "POST", "/api/logout", {"refresh_token": signed_in["refresh_token"]}
        )
        assert out[0] == 204
        with pytest.raises(Exception):  # noqa: B017 - closed, in whatever way
            async with asyncio.timeout(10):
                async for _ in ws:
                    pass
                raise AssertionError("socket ended without a close code")
        assert ws.close_code == 4401
    # The signed-out access token is refused by every hub, before it expires.
    for hub in (a, b):
        status, body = await Api(http, hub.url, token).call("GET", "/api/user")
        assert_error(status, body, 401)


async def test_hub_a_killed_agent_moves_to_b_every_line_once(
    start_hub: StartHub, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a, b = await start_hub("a"), await start_hub("b")
    owner = await Api(http, a.url).sign_up("owner@example.com")
    agent_id, agent = await agent_on(a, owner, tmp_path, b)
    try:
        assert owner.token
        address = f"ws://127.0.0.1:{b.port}/ws/terminal/{agent_id}?token={owner.token}"
        async with connect(address, compression=None) as ws:
            await first_message(ws)
            await ws.send(b"echo $((6*7))\r")
            await read_until(ws, b"42\r\n")

        async def kill_a() -> None:
            a.kill()  # SIGKILL: no goodbye to anyone

        out = await read_numbered(b.port, agent_id, owner.token, interrupt=kill_a)
        assert_every_line_once(out)
        # The agent now lives on B.
        status = await api_on(b, owner).ok("GET", f"/api/agents/{agent_id}")
        assert status["status"] == "online"
        log = json.dumps(agent.output())
        assert b.url in log, log[-2000:]
    finally:
        agent.kill()


async def test_rate_limits_count_across_hubs(
    start_hub: StartHub, http: aiohttp.ClientSession
) -> None:
    a, b = await start_hub("a"), await start_hub("b")
    await Api(http, a.url).sign_up("owner@example.com")
    wrong = {"email": "owner@example.com", "password": "not the password"}
    # The default allows 10 failed sign-ins a minute per account: 5 on each hub use it up.
    for hub in (a, b):
        for _ in range(5):
            status, body = await Api(http, hub.url).call("POST", "/api/login", wrong)
            assert_error(status, body, 401, "invalid_credentials")
    for hub in (a, b):
        status, body = await Api(http, hub.url).call("POST", "/api/login", wrong)
        assert_error(status, body, 429, "rate_limited")


async def test_agent_cut_off_from_a_live_hub_moves_and_a_lets_go(
    start_hub: StartHub, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Hub A stays up but the agent cannot reach it: the agent goes to hub B, which
    takes the session up; hub A drops its copy (never ending the session) and its
    client comes back through A, relayed to B, with every line once."""
    a, b = await start_hub("a"), await start_hub("b")
    owner = await Api(http, a.url).sign_up("owner@example.com")
    proxy = await TcpProxy(a.port).start()
    via_proxy = Hub(a.data_dir, port=proxy.port)
    via_proxy.url = f"http://127.0.0.1:{proxy.port}"
    agent_id, agent = await agent_on(via_proxy, owner, tmp_path, b)
    try:
        assert owner.token

        async def cut() -> None:
            await proxy.cut()  # refused from now on: the agent moves to B

        out = await read_numbered(a.port, agent_id, owner.token, interrupt=cut)
        assert_every_line_once(out)
        sessions = (await owner.ok("GET", "/api/sessions"))["sessions"]
        assert [s["exit_code"] for s in sessions] == [0]  # ended once, by its program
    finally:
        agent.kill()
        await proxy.close()


async def test_stalled_client_on_b_paces_the_agent_on_a(pair: Pair) -> None:
    """Flow control end to end through the relay: a client on B that stops reading
    stops `yes` on the agent behind A; no hub and not the agent grows meanwhile."""
    a, b, owner, agent_id, agent = pair.a, pair.b, pair.owner, pair.agent_id, pair.agent
    assert owner.token and a.proc and b.proc
    address = f"ws://127.0.0.1:{b.port}/ws/terminal/{agent_id}?token={owner.token}&command=yes"
    async with connect(address, compression=None, max_queue=4) as ws:
        await first_message(ws)
        got = 0
        while got < 4 * MiB:  # warm up: output flows through both hubs
            msg = await ws.recv()
            if isinstance(msg, bytes):
                got += len(msg)
        procs = {"hub a": a.proc.pid, "hub b": b.proc.pid, "agent": agent.pid}
        before = {name: rss_of(pid) for name, pid in procs.items()}
        await asyncio.sleep(5)  # the client reads nothing for 5 s: that is the test
        after = {name: rss_of(pid) for name, pid in procs.items()}
        for name in procs:
            assert after[name] - before[name] < 16 * MiB, (name, before, after)
        got, tail = 0, b""
        async with asyncio.timeout(30):  # reading again, output flows and is intact
            while got < 16 * MiB:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    got += len(msg)
                    tail = (tail + msg)[-4096:]
        assert set(tail.split(b"\r\n")[1:-1]) == {b"y"}


async def test_relaying_hub_stopping_sends_its_clients_elsewhere(pair: Pair) -> None:
    a, b, owner, agent_id = pair.a, pair.b, pair.owner, pair.agent_id
    assert owner.token
    address = f"ws://127.0.0.1:{b.port}/ws/terminal/{agent_id}?token={owner.token}"
    async with connect(address, compression=None) as ws:
        sid = (await first_message(ws))["id"]
        await ws.send(b"x=kept\r")
        b.kill(signal.SIGTERM)  # a clean stop: the client is told to reconnect
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                async for _ in ws:
                    pass
        assert ws.close_code == 1012
    again = f"ws://127.0.0.1:{a.port}/ws/terminal/{agent_id}?token={owner.token}&session={sid}"
    async with connect(again, compression=None) as ws:  # the same shell, on hub A
        assert (await first_message(ws))["id"] == sid
        await ws.send(b"echo $x\r")
        await read_until(ws, b"kept\r\n")
