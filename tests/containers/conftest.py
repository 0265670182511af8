"""A real Docker engine (started by scripts/services.sh), a locally imported image, and
hub processes configured for containers. Each hub's containers carry its instance
label; teardown removes exactly those."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import docker
import pytest

from tests.support import ROOT, Api, Hub, remove_hub_leftovers

IMAGE = "rexec/busybox:1"
_ready = False


def ensure_docker() -> None:
    global _ready
    if _ready:
        return
    try:
        for script in (["services.sh", "docker"], ["base-image.sh", "busybox"]):
            subprocess.run(
                [str(ROOT / "scripts" / script[0]), *script[1:]],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
    except (subprocess.CalledProcessError, OSError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Docker engine here: {exc}")
    _ready = True


@pytest.fixture
def engine() -> docker.DockerClient:
    ensure_docker()
    client = docker.from_env()
    yield client
    client.close()


def cleanup(client: docker.DockerClient, data_dir: Path) -> None:
    """Remove what one test hub left behind, by its instance label only."""
    remove_hub_leftovers(client, data_dir)


HubFactory = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def make_hub(engine: docker.DockerClient, tmp_path: Path) -> AsyncIterator[HubFactory]:
    hubs: list[Hub] = []

    async def make(data_dir: Path | None = None, port: int = 0, **env: str) -> Hub:
        settings = {
            "REXEC_CONTAINER_NETWORK": "none",
            "REXEC_WARM_POOL_SIZE": "1",
            "REXEC_CONTAINER_MEMORY_MB_DEFAULT": "128",
            **{f"REXEC_{k.upper()}": v for k, v in env.items()},
        }
        hub = await Hub(data_dir or tmp_path / f"hub{len(hubs)}", env=settings, port=port).start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.kill()
    for hub in hubs:
        cleanup(engine, hub.data_dir)


@pytest.fixture
async def chub(make_hub: HubFactory) -> Hub:
    return await make_hub()


@pytest.fixture
async def alice(chub: Hub, http: aiohttp.ClientSession) -> Api:
    return await Api(http, chub.url).sign_up("alice@example.com")
