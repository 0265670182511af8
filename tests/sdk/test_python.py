"""The shared scenario of every SDK, in Python (client/sdk.py) against a real hub:
sign in, create a container, exec by name with exit 3 and split output, a terminal that
computes 42, resize, detach, resume from the offset, read the recording."""

from __future__ import annotations

import json

import aiohttp
import pytest

from client.models import ExecResult
from client.sdk import AsyncClient
from client.terminal import Terminal
from tests.containers.conftest import HubFactory
from tests.support import Api, wait_for

pytestmark = pytest.mark.backend_independent
EMAIL, PASSWORD = "py@example.com", "correct horse 1"


async def read_until(term: Terminal, text: bytes, seen: bytearray) -> None:
    """Read the terminal's output into `seen` until it holds `text`."""
    async for chunk in term:
        seen += chunk
        if text in seen:
            return
    raise AssertionError(f"{text!r} never came: {bytes(seen)!r}")


async def test_python_sdk_scenario(make_hub: HubFactory, http: aiohttp.ClientSession) -> None:
    hub = await make_hub()
    await Api(http, hub.url).sign_up(EMAIL, PASSWORD)
    async with AsyncClient(hub.url) as rx:
        await rx.login(EMAIL, PASSWORD)
        box = await rx.containers.create(name="pybox")
        assert box.status == "running"
        ran = await rx.containers.exec("pybox", ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert isinstance(ran, ExecResult)
        assert (ran.exit_code, ran.stdout, ran.stderr) == (3, "out\n", "err\n")

        seen = bytearray()
        term = await rx.attach(box.id, cols=80, rows=24)
        session = term.session_id
        await term.send(b"echo $((6*7))\n")
        await read_until(term, b"\n42\r\n", seen)
        await term.resize(100, 30)
        await term.send(b"stty size\n")
        await read_until(term, b"30 100", seen)
        await term.close()  # detach
        assert term.offset is not None and term.offset >= len(seen)

        again = await rx.attach(box.id, session=session, offset=term.offset)
        assert again.session_id == session
        resumed = bytearray()
        await again.send(b"echo resumed-$((1+1)); exit 0\n")
        await read_until(again, b"resumed-2\r\n", resumed)
        assert await again.wait() == 0
        assert b"42" not in resumed, "bytes before the offset are sent again"

        async def recorded() -> bool:
            return (await rx.sessions.get(session)).raw["recording"]["available"] is True

        await wait_for(recorded, 30, what="the recording")
        header, *events = (await rx.sessions.recording(session)).decode().splitlines()
        assert json.loads(header)["version"] == 2
        assert "42" in "".join(json.loads(e)[2] for e in events)
        await rx.containers.delete(box.id)
