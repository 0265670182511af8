"""Acceptance: pressing pause closes the live connections of agents' credentials on the
target at once (a terminal socket with an `ai_paused` error then 4403, an SSH shell with
one line), while a person's browser session on the same target keeps working; a policy
that takes typing away sends agents' typing sockets back to reconnect read-only."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pexpect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_terminal import read_until
from tests.security.conftest import Credentials, RunningAgent
from tests.ssh.conftest import SshHub, spawn
from tests.support import Api


def url(hub: SshHub, target: str, token: str | None) -> str:
    assert token
    return f"ws://127.0.0.1:{hub.port}/ws/terminal/{target}?token={token}"


async def opened(ws: ClientConnection) -> dict[str, Any]:
    first = json.loads(await ws.recv())
    assert first["type"] == "session", first
    return dict(first)


async def closed_with(ws: ClientConnection) -> tuple[int | None, list[dict[str, Any]]]:
    """Everything the hub says until it closes the socket, and the close code."""
    texts: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        with contextlib.suppress(ConnectionClosed):  # a close code other than 1000
            async for msg in ws:
                if isinstance(msg, str):
                    texts.append(json.loads(msg))
    return ws.close_code, texts


async def test_pause_ends_agents_connections_and_spares_people(
    hub: SshHub, owner: Api, creds: Credentials, agent: RunningAgent
) -> None:
    await owner.ok("PUT", f"/api/agents/{agent.id}/policy", {"mode": "auto"})
    ai_token = creds.agent_token.token
    async with (
        connect(url(hub, agent.id, owner.token), compression=None) as person,
        connect(url(hub, agent.id, ai_token), compression=None) as ai,
    ):
        assert (await opened(person))["role"] == "owner"
        ai_session = await opened(ai)
        assert ai_session["role"] == "owner"  # under auto an agent types
        await ai.send(b"echo ai-typed-$((2+3))\n")
        await read_until(ai, b"ai-typed-5", 20)
        # An agent joined to the person's session, and an agent's SSH shell.
        person_session = (await owner.ok("GET", "/api/sessions"))["sessions"]
        joined_id = next(s["id"] for s in person_session if s["id"] != ai_session["id"])
        async with connect(
            url(hub, agent.id, ai_token) + f"&session={joined_id}", compression=None
        ) as joined:
            assert (await opened(joined))["role"] == "owner"
            child = spawn(hub, creds.agent_key, agent.id)
            try:
                child.sendline("echo ssh-typed-$((3+4))")
                child.expect("ssh-typed-7", timeout=20)

                await owner.ok("POST", f"/api/agents/{agent.id}/policy/pause")

                for ws in (ai, joined):
                    code, texts = await closed_with(ws)
                    assert code == 4403, (code, texts)
                    assert {"ai_paused"} <= {t.get("code") for t in texts if t["type"] == "error"}
                child.expect("rexec: AI execution on this target is paused", timeout=15)
                child.expect(pexpect.EOF, timeout=15)
            finally:
                child.close(force=True)
        # The person's browser session is untouched and still types.
        await person.send(b"echo still-mine-$((5+5))\n")
        await read_until(person, b"still-mine-10", 20)

        # Back to auto, then a stricter policy: an agent's typing socket is closed and
        # comes back read-only; the person's stays.
        await owner.ok("POST", f"/api/agents/{agent.id}/policy/resume")
        async with connect(url(hub, agent.id, ai_token), compression=None) as again:
            assert (await opened(again))["role"] == "owner"
            await owner.ok("PUT", f"/api/agents/{agent.id}/policy", {"mode": "approve_all"})
            code, texts = await closed_with(again)
            assert code == 4403 and "ai_read_only" in {t.get("code") for t in texts}, texts
        async with connect(url(hub, agent.id, ai_token), compression=None) as watching:
            assert (await opened(watching))["role"] == "viewer"
        await person.send(b"echo people-$((6+6))\n")
        await read_until(person, b"people-12", 20)


async def test_a_writer_link_gives_an_agent_no_keys_where_it_may_not_type(
    hub: SshHub, owner: Api, creds: Credentials, agent: RunningAgent
) -> None:
    """A writer share opened with an agent's token is a viewer under a policy that holds
    AI commands; pausing then closes it like any agent's socket."""
    await owner.ok("PUT", f"/api/agents/{agent.id}/policy", {"mode": "approve_all"})
    async with connect(url(hub, agent.id, owner.token), compression=None) as person:
        session_id = (await opened(person))["id"]
        made = await owner.ok("POST", f"/api/sessions/{session_id}/share", {"role": "writer"}, 201)
        link = made["url"].rsplit("/share/", 1)[1]
        shared = url(hub, agent.id, creds.agent_token.token) + f"&share={link}"
        async with connect(shared, compression=None) as ai:
            assert (await opened(ai))["role"] == "viewer"
            await owner.ok("POST", f"/api/agents/{agent.id}/policy/pause")
            code, texts = await closed_with(ai)
            assert code == 4403 and "ai_paused" in {t.get("code") for t in texts}, texts
        await person.send(b"echo mine-$((7+7))\n")
        await read_until(person, b"mine-14", 20)
