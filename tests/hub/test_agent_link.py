"""A registered agent that misbehaves on its link (issue 16): queues stay bounded,
metrics are coalesced, held-channel claims are capped, and the link closes with
ABUSE_CLOSE."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event

from common.protocol import Close, Metrics, Ping, encode
from hub.agents.connection import ABUSE_CLOSE, MAX_CONTROL_QUEUED, MAX_HELD_CHANNELS
from hub.db.models import Agent
from hub.state import AGENTS, DB
from tests.hub.rawagent import RawAgent, proof, register
from tests.support import Api, wait_for


async def _link(api: Api, server: TestServer, **kw: Any) -> tuple[str, Ed25519PrivateKey, RawAgent]:
    user = await api.sign_up("agent-owner@example.com")
    agent_id, key = await register(user)
    raw = await _connect(server, agent_id, key, **kw)
    return agent_id, key, raw


async def _connect(server: TestServer, agent_id: str, key: Any, **kw: Any) -> RawAgent:
    status, raw = await RawAgent.connect(server.port or 0, agent_id, proof(agent_id, key), **kw)
    assert status == 101
    return raw


def _counting(server: TestServer, match: Callable[[str], bool]) -> tuple[list[str], Any]:
    """Statements the hub's database runs that `match` picks, and the listener."""
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if match(statement):
            seen.append(statement)

    event.listen(server.app[DB].engine.sync_engine, "before_cursor_execute", listener)
    return seen, listener


async def test_a_ping_flood_that_is_never_read_stays_bounded_and_is_closed(
    api: Api, hub_server: TestServer
) -> None:
    agent_id, _key, raw = await _link(api, hub_server, rcvbuf=4096)
    try:
        await raw.hello()
        await raw.welcome()
        conn = hub_server.app[AGENTS].live[agent_id]
        batch = b"".join(RawAgent.frame(encode(Ping(n))) for n in range(1000))
        highest = 0
        for _ in range(800):  # up to 800k Pings, never reading a Pong
            if conn.closed.is_set():
                break
            await raw.send_raw(batch)
            highest = max(highest, conn.control_queued, len(conn._out))
        assert conn.closed.is_set(), f"still open with {len(conn._out)} frames queued"
        assert highest <= MAX_CONTROL_QUEUED
        assert await raw.close_code_of_link() == ABUSE_CLOSE
    finally:
        raw.close()


async def test_a_metrics_flood_is_coalesced_into_a_few_writes(
    api: Api, hub_server: TestServer
) -> None:
    agent_id, _key, raw = await _link(api, hub_server)
    writes, listener = _counting(
        hub_server,
        lambda sql: sql.lstrip().upper().startswith("UPDATE AGENTS") and "metrics" in sql,
    )
    try:
        await raw.hello()
        await raw.welcome()
        await raw.send(*(Metrics({"n": n, "load": n / 100}) for n in range(1500)))

        async def stored() -> bool:
            async with hub_server.app[DB].session() as s:
                agent = await s.get(Agent, agent_id)
                return agent is not None and (agent.metrics or {}).get("n") == 1499

        await wait_for(stored, 30, what="the last metrics frame stored")
        assert 1 <= len(writes) <= 3, len(writes)
        assert not hub_server.app[AGENTS].live[agent_id].closed.is_set()
    finally:
        event.remove(hub_server.app[DB].engine.sync_engine, "before_cursor_execute", listener)
        raw.close()


async def test_claiming_thousands_of_held_channels_closes_the_link_before_any_lookup(
    api: Api, hub_server: TestServer
) -> None:
    agent_id, key, raw = await _link(api, hub_server)
    lookups, listener = _counting(hub_server, lambda sql: "terminal_sessions" in sql)
    try:
        await raw.hello({n: 0 for n in range(1, 3000)})
        assert await raw.close_code_of_link() == ABUSE_CLOSE
        assert lookups == []
        assert agent_id not in hub_server.app[AGENTS].live
        # Within the cap, held channels are looked up (unknown ones: told to close).
        raw.close()
        raw = await _connect(hub_server, agent_id, key)
        await raw.hello({n: 0 for n in range(1, MAX_HELD_CHANNELS + 1)})
        await raw.welcome()
        closes = [await raw.receive() for _ in range(MAX_HELD_CHANNELS)]
        assert [raw.link.receive(p) for _, p in closes] == [
            Close(n, 0.0) for n in range(1, MAX_HELD_CHANNELS + 1)
        ]
        assert lookups
    finally:
        event.remove(hub_server.app[DB].engine.sync_engine, "before_cursor_execute", listener)
        raw.close()
