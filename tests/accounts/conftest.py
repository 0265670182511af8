"""A hub with settings of the test's choosing, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hub.app import create_app
from hub.settings import HubSettings
from tests.support import Api

MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(settings: HubSettings, http: aiohttp.ClientSession) -> AsyncIterator[MakeApi]:
    servers: list[TestServer] = []

    async def make(**overrides: Any) -> Api:
        # No Docker unless asked for: these hubs need no warm pool.
        changed = HubSettings(**{**settings.model_dump(), "docker_enabled": False, **overrides})
        server = TestServer(create_app(changed), host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return Api(http, str(server.make_url("")).rstrip("/"))

    yield make
    for server in servers:
        await server.close()
