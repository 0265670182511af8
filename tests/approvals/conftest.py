"""Real hub processes with the Docker engine, a person (alice, signed in) and her AI
(an API token), and a browser-style terminal socket on her container."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from tests.containers.conftest import HubFactory, engine, make_hub
from tests.support import Api, Hub, wait_for

__all__ = ["engine", "make_hub"]


@pytest.fixture
async def chub(make_hub: HubFactory) -> Hub:
    return await make_hub(approval_sweep_interval="0.5")


@pytest.fixture
async def alice(chub: Hub, http: aiohttp.ClientSession) -> Api:
    return await Api(http, chub.url).sign_up("alice@example.com")


async def token_for(person: Api, name: str = "ai") -> Api:
    body = await person.ok("POST", "/api/user/tokens", {"name": name}, 201)
    return Api(person.http, person.base, body["token"])


@pytest.fixture
async def ai(alice: Api) -> Api:
    return await token_for(alice)


@pytest.fixture
async def box(alice: Api) -> str:
    return str((await alice.ok("POST", "/api/containers", {"name": "box"}, 201))["id"])


@dataclass
class Browser:
    """A terminal socket as the web page opens it (`?token=`), reading everything."""

    ws: aiohttp.ClientWebSocketResponse
    messages: list[dict[str, Any]] = field(default_factory=list)
    output: bytearray = field(default_factory=bytearray)
    task: asyncio.Task[None] | None = None

    async def pump(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self.output += msg.data

    @property
    def session_id(self) -> str:
        return str(self.messages[0]["id"])

    def approvals(self, approval_id: str) -> list[dict[str, Any]]:
        return [
            m["approval"]
            for m in self.messages
            if m.get("type") == "approval" and m["approval"]["id"] == approval_id
        ]

    async def statuses(self, approval_id: str, *wanted: str) -> None:
        await wait_for(
            lambda: (
                [a["status"] for a in self.approvals(approval_id)][: len(wanted)] == list(wanted)
            ),
            20,
            what=f"approval messages {wanted}",
        )


@pytest.fixture
async def browser(chub: Hub, alice: Api, box: str) -> AsyncIterator[Browser]:
    url = chub.url.replace("http", "ws") + f"/ws/terminal/{box}?token={alice.token}"
    async with alice.http.ws_connect(url) as ws:
        page = Browser(ws)
        page.task = asyncio.create_task(page.pump())
        await wait_for(lambda: page.messages, 15, what="the session message")
        assert page.messages[0]["type"] == "session"
        await wait_for(lambda: b"$" in page.output or b"#" in page.output, 15, what="a prompt")
        yield page
        page.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await page.task


async def sh(api: Api, box: str, line: str) -> dict[str, Any]:
    """A plain (unsupervised) exec of a shell line."""
    return dict(await api.ok("POST", f"/api/containers/{box}/exec", {"cmd": line}))


async def exists(api: Api, box: str, path: str) -> bool:
    return (await sh(api, box, f"test -e {path}"))["exit_code"] == 0
