"""Acceptance: a client that stops reading makes the program block; memory stays flat."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from tests.e2e.conftest import RunningAgent
from tests.support import Api, Hub, rss_of

MiB = 1 << 20


async def test_stalled_client_blocks_yes_without_growing_memory(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token and hub.proc
    url = f"ws://127.0.0.1:{hub.port}/ws/terminal/{agent.id}?token={owner.token}&command=yes"
    # max_queue bounds what the client library itself buffers, so not calling recv()
    # really stops reading from the socket.
    async with connect(url, compression=None, max_queue=4) as ws:
        assert json.loads(await ws.recv())["type"] == "session"
        got = 0
        while got < 4 * MiB:  # warm up: output flows
            msg = await ws.recv()
            if isinstance(msg, bytes):
                got += len(msg)
        hub_before, agent_before = rss_of(hub.proc.pid), rss_of(agent.proc.pid)
        await asyncio.sleep(5)  # the client reads nothing for 5 s: that is the test
        hub_after, agent_after = rss_of(hub.proc.pid), rss_of(agent.proc.pid)
        assert hub_after - hub_before < 16 * MiB, (hub_before, hub_after)
        assert agent_after - agent_before < 16 * MiB, (agent_before, agent_after)
        # Reading again, output flows normally and is intact.
        tail = b""
        got = 0
        async with asyncio.timeout(30):
            while got < 16 * MiB:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    got += len(msg)
                    tail = (tail + msg)[-4096:]
        assert set(tail.split(b"\r\n")[1:-1]) == {b"y"}
