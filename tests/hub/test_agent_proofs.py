"""An agent's proof is single use (issue 16): replayed within its life, it is refused."""

from __future__ import annotations

from aiohttp.test_utils import TestServer

from hub.app import create_app
from hub.settings import HubSettings
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


async def test_a_proof_used_on_one_hub_is_refused_by_another(
    api: Api, hub_server: TestServer, settings: HubSettings
) -> None:
    """Two hubs on one database (a cluster's shape): the spent proof is shared."""
    other = TestServer(
        create_app(settings.model_copy(update={"data_dir": settings.data_dir.parent / "hub2"})),
        host="127.0.0.1",
        port=0,
    )
    await other.start_server()
    try:
        user = await api.sign_up("agent-owner@example.com")
        agent_id, key = await register(user)
        token = proof(agent_id, key)
        status, first = await RawAgent.connect(hub_server.port or 0, agent_id, token)
        first.close()
        assert status == 101
        status, replay = await RawAgent.connect(other.port or 0, agent_id, token)
        replay.close()
        assert status == 401
    finally:
        await other.close()
