"""Deeply nested JSON from outside (issue 16): one bounded decoder answers a clean 400
or a close code, never a RecursionError, a 500 or a line in the error log."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from common.protocol import Open, Opened
from tests.hub.rawagent import RawAgent, proof, register
from tests.support import Api, assert_error

DEEP = b"[" * 100_000 + b"]" * 100_000


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def test_deep_json_to_login_is_a_clean_400(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    for body in (DEEP, b'{"email": ' + DEEP + b"}"):
        status, answer = await api.call("POST", "/api/login", raw=body)
        assert_error(status, answer, 400, "invalid_request")
        assert "nested" in answer["error"]["message"]
    _no_errors_logged(caplog)


async def test_deep_json_to_exec_is_a_clean_400(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    user = await api.sign_up("deep@example.com")
    agent_id, _key = await register(user)
    status, answer = await user.call("POST", f"/api/agents/{agent_id}/exec", raw=DEEP)
    assert_error(status, answer, 400, "invalid_request")
    _no_errors_logged(caplog)


async def test_a_deep_text_frame_on_the_terminal_socket_gets_an_error_and_a_close_code(
    api: Api, hub_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    user = await api.sign_up("deep@example.com")
    agent_id, key = await register(user)
    status, agent = await RawAgent.connect(hub_server.port or 0, agent_id, proof(agent_id, key))
    assert status == 101
    try:
        await agent.hello()
        await agent.welcome()
        url = f"{api.base}/ws/terminal/{agent_id}?token={user.token}"

        async def start_the_program() -> None:  # the hub waits for Opened before upgrading
            _, frame = await agent.receive()
            opening = agent.link.receive(frame)
            assert isinstance(opening, Open)
            await agent.send(Opened(opening.channel, 4242))

        starting = asyncio.ensure_future(start_the_program())
        async with api.http.ws_connect(url.replace("http", "ws", 1)) as ws:
            await starting
            await ws.send_str("[" * 30_000 + "]" * 30_000)
            while True:  # past the session's own messages
                reply = await ws.receive(timeout=20)
                assert reply.type is aiohttp.WSMsgType.TEXT, reply
                error = reply.json()
                if error["type"] == "error":
                    break
            assert error["type"] == "error" and error["code"] == "invalid_request", error
            assert "nested" in error["message"]
            closing = await ws.receive(timeout=20)
            assert closing.type is aiohttp.WSMsgType.CLOSE, closing
            assert ws.close_code == 4400
    finally:
        agent.close()
    _no_errors_logged(caplog)
