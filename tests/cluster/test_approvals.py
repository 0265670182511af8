"""Supervision across hubs: the AI asks through one hub, a person decides through the
other, the command runs where the agent is, and both hubs' clients hear of it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tests.approvals.conftest import Browser, token_for
from tests.cluster.conftest import agent_on, api_on
from tests.support import Api, Hub, wait_for

StartHub = Callable[[str], Awaitable[Hub]]


async def test_held_on_b_decided_on_b_runs_in_the_session_on_a(
    start_hub: StartHub, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a, b = await start_hub("a"), await start_hub("b")
    on_a = await Api(http, a.url).sign_up("owner@example.com")
    on_b = api_on(b, on_a)
    ai_b = api_on(b, await token_for(on_a))
    agent_id, agent = await agent_on(a, on_a, tmp_path)
    try:
        url = f"{b.url.replace('http', 'ws')}/ws/terminal/{agent_id}?token={on_a.token}"
        async with http.ws_connect(url) as ws:
            page = Browser(ws)
            page.task = asyncio.create_task(page.pump())
            await wait_for(lambda: page.messages, 15, what="the session message")
            # A shell starting up may discard what was typed before its prompt.
            await wait_for(lambda: page.output.rstrip().endswith((b"$", b"#")), 15, what="a prompt")
            code, held = await ai_b.call(
                "POST",
                f"/api/agents/{agent_id}/exec",
                {"cmd": "rm -rf /tmp/rexec-nothing-here; echo clustered", "supervised": True},
            )
            assert code == 202, held
            approval_id = held["approval"]["id"]
            await page.statuses(approval_id, "pending")
            waiting = asyncio.create_task(ai_b.ok("GET", f"/api/approvals/{approval_id}?wait=60"))
            await on_b.ok("POST", f"/api/approvals/{approval_id}/approve", {})
            done = await asyncio.wait_for(waiting, 60)
            assert done["status"] == "completed", done
            assert done["result"]["stdout"] == "clustered\n"
            assert done["result"]["session"] == page.session_id
            await page.statuses(approval_id, "pending", "approved", "completed")
            assert (await on_a.ok("GET", f"/api/approvals/{approval_id}"))["status"] == "completed"
            page.task.cancel()
    finally:
        agent.kill()
