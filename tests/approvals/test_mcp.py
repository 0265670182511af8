"""The hub's MCP server driven by the official `mcp` client library (ClientSession over
streamable HTTP) against a real hub with real containers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.approvals.conftest import exists, sh, token_for
from tests.support import Api, Hub, assert_error, wait_for

TOOLS = {
    "list_targets",
    "create_sandbox",
    "destroy_sandbox",
    "run_command",
    "check_approval",
    "read_screen",
    "send_keys",
}


@contextlib.asynccontextmanager
async def connect(hub: Hub, token: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(f"{hub.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, args)
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(result.content[0].text))  # type: ignore[union-attr]


async def test_mcp_client_creates_a_sandbox_runs_echo_and_reads_it_back(
    chub: Hub, alice: Api, ai: Api
) -> None:
    assert ai.token is not None
    async with connect(chub, ai.token) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert tools == TOOLS
        box = await call(session, "create_sandbox", name="mcpbox")
        assert box["id"].startswith("ctr_") and box["status"] == "running"
        listed = await call(session, "list_targets")
        assert [c["id"] for c in listed["containers"]] == [box["id"]]

        ran = await call(session, "run_command", target=box["id"], command="echo 42")
        assert ran["status"] == "completed" and ran["exit_code"] == 0
        assert ran["stdout"].strip() == "42"
        named = await call(session, "run_command", target="mcpbox", command="echo by name")
        assert named["status"] == "completed" and named["stdout"] == "by name\n"

        # A terminal: keys in, the screen back as text (an agent types only under `auto`).
        policy = f"/api/containers/{box['id']}/policy"
        await alice.ok("PUT", policy, {"mode": "auto"})
        sent = await call(session, "send_keys", target=box["id"], keys="echo $((6*7))x\n")

        async def screen() -> str:
            shown = await call(session, "read_screen", target=box["id"])
            assert shown["session"] == sent["session"]
            return str(shown["screen"])

        await wait_for(lambda: _has_line(screen(), "42x"), 20, what="42x on the screen")

        # A held command: the tool says it is pending, with the approval's id.
        await alice.ok("PUT", policy, {"mode": "approve_risky"})
        await sh(ai, box["id"], "mkdir -p /tmp/x")
        pending = await call(
            session, "run_command", target=box["id"], command="rm -rf /tmp/x", wait_seconds=0.5
        )
        assert pending["status"] == "pending" and pending["approval"].startswith("apr_")
        assert await exists(ai, box["id"], "/tmp/x")
        waiting = asyncio.create_task(
            call(session, "check_approval", approval_id=pending["approval"])
        )
        await alice.ok("POST", f"/api/approvals/{pending['approval']}/approve", {})
        done = await asyncio.wait_for(waiting, 60)
        assert done["status"] == "completed" and done["exit_code"] == 0
        assert not await exists(ai, box["id"], "/tmp/x")

        # Errors reach the model as tool errors, not crashes.
        missing = await session.call_tool("run_command", {"target": "ctr_nope", "command": "ls"})
        assert missing.is_error
        unnamed = await session.call_tool("run_command", {"target": "nobox", "command": "ls"})
        assert unnamed.is_error and "target_not_found" in str(unnamed.content)

        gone = await call(session, "destroy_sandbox", container_id=box["id"])
        assert gone == {"destroyed": box["id"]}
        assert (await alice.ok("GET", "/api/containers"))["containers"] == []


async def _has_line(screen: Any, wanted: str) -> bool:
    return wanted in (await screen).splitlines()


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Bearer rx_nope", "jwt"])
async def test_mcp_needs_an_api_token(chub: Hub, alice: Api, header: str | None) -> None:
    if header == "jwt":
        header = f"Bearer {alice.token}"  # a sign-in is not an AI's credential
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if header:
        headers["Authorization"] = header
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with alice.http.post(f"{chub.url}/mcp", json=body, headers=headers) as resp:
        assert_error(resp.status, await resp.json(), 401)


async def test_mcp_tools_keep_to_the_callers_own_objects(chub: Hub, alice: Api) -> None:
    box = (await alice.ok("POST", "/api/containers", {}, 201))["id"]
    bob = await Api(alice.http, chub.url).sign_up("bob@example.com")
    bob_ai = await token_for(bob)
    assert bob_ai.token is not None
    async with connect(chub, bob_ai.token) as session:
        assert (await call(session, "list_targets"))["containers"] == []
        for tool, args in (
            ("run_command", {"target": box, "command": "ls"}),
            ("read_screen", {"target": box}),
            ("send_keys", {"target": box, "keys": "ls\n"}),
            ("destroy_sandbox", {"container_id": box}),
        ):
            result = await session.call_tool(tool, args)
            assert result.is_error, tool
            assert "container_not_found" in result.content[0].text  # type: ignore[union-attr]
