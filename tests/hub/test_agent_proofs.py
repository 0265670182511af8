"""An agent's proof is single use (issue 16): replayed within its life, it is refused."""

from __future__ import annotations

from aiohttp.test_utils import TestServer

from tests.hub.rawagent import RawAgent, proof, register
from tests.support import Api


async def test_an_agent_proof_works_once(api: Api, hub_server: TestServer) -> None:
    user = await api.sign_up("agent-owner@example.com")
    agent_id, key = await register(user)
    token = proof(agent_id, key)
    status, first = await RawAgent.connect(hub_server.port or 0, agent_id, token)
    first.close()
    assert status == 101
    status, replay = await RawAgent.connect(hub_server.port or 0, agent_id, token)
    replay.close()
    assert status == 401
    status, fresh = await RawAgent.connect(hub_server.port or 0, agent_id, proof(agent_id, key))
    fresh.close()
    assert status == 101
