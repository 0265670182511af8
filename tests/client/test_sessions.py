"""`rexec sessions` against a live hub: a real terminal session is recorded, listed,
downloaded and played back; shared and ended.

These need the hub's session endpoints (API.md: Terminal sessions). A hub without
them answers 404 `not_found` ("No such endpoint"), and the tests say so plainly.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from client.player import parse_cast
from client.sdk import AsyncClient
from client.terminal import Terminal
from tests.client.conftest import Cli, assert_one_line_error
from tests.support import Api, wait_for


async def require_session_endpoints(alice: Api) -> None:
    code, body = await alice.call("GET", "/api/sessions")
    if code == 404:
        pytest.fail(
            "GET /api/sessions answered 404 on this hub: the session endpoints of API.md "
            f"(list, get, recording, share, end) are not served yet. Answer: {body}"
        )
    assert code == 200, body


async def read_until(term: Terminal, needle: bytes, seen: bytearray) -> None:
    async with asyncio.timeout(15):
        async for chunk in term:
            seen += chunk
            if needle in seen:
                return
    raise AssertionError(f"no {needle!r} in {bytes(seen)!r}")


async def test_sessions_ls_download_and_play_match_the_recording(
    signed_in: Cli, sdk: AsyncClient, alice: Api, container: str, tmp_path: Path
) -> None:
    await require_session_endpoints(alice)
    seen = bytearray()
    async with await sdk.attach(container, cols=80, rows=24) as term:
        await term.send(b"echo recorded-$((6*7))\n")
        await read_until(term, b"recorded-42\r\n", seen)
        await term.send(b"exit 0\n")
        async for chunk in term:
            seen += chunk
        session_id = term.session_id
    assert term.exit_code == 0

    async def recorded() -> dict[str, Any] | None:
        listed = json.loads(await signed_in.ok("sessions", "ls", "--json"))["sessions"]
        mine = [s for s in listed if s["id"] == session_id]
        if mine and mine[0]["status"] == "ended" and mine[0]["recording"]["available"]:
            return dict(mine[0])
        return None

    entry = await wait_for(recorded, 20, what=f"{session_id} ended with its recording")
    assert entry["target"] == container
    table = await signed_in.ok("sessions", "ls")
    assert session_id in table and "ended" in table

    cast = tmp_path / "rec.cast"
    download = await signed_in("sessions", "download", session_id, "-o", str(cast))
    assert download.code == 0, str(download)
    recording = parse_cast(cast.read_bytes())
    assert recording.header.version == 2
    assert "recorded-42\r\n" in recording.output()
    assert recording.output().encode() == bytes(seen)  # what the client saw, recorded

    played = await signed_in("sessions", "play", session_id, "--speed", "50", "-i", "0.05")
    assert played.code == 0, str(played)
    assert played.out == recording.output()
    from_file = await signed_in("sessions", "play", str(cast), "--speed", "50", "-i", "0.05")
    assert from_file.out == recording.output()
    to_stdout = await signed_in.ok("sessions", "download", session_id, "-o", "-")
    assert parse_cast(to_stdout).output() == recording.output()


async def test_sessions_share_and_end(
    signed_in: Cli, sdk: AsyncClient, alice: Api, container: str, chub_url: str
) -> None:
    await require_session_endpoints(alice)
    seen = bytearray()
    async with await sdk.attach(container) as term:
        await term.send(b"echo ready\n")
        await read_until(term, b"ready\r\n", seen)
        session_id = term.session_id

        shared = json.loads(await signed_in.ok("sessions", "share", session_id, "--json"))
        assert shared["url"] and "expires_at" in shared
        url = (await signed_in.ok("sessions", "share", session_id, "--role", "viewer")).strip()
        assert url.startswith("http")
        token = shared["share"]["token"]
        guest = AsyncClient(chub_url)  # no sign-in: the link is the credential
        async with guest, await guest.attach(container, share=token) as watcher:
            assert watcher.role == "viewer"
            await term.send(b"echo for-the-viewer\n")
            await read_until(watcher, b"for-the-viewer\r\n", bytearray())

        assert (await signed_in.ok("sessions", "end", session_id)).split() == [session_id]
        await asyncio.wait_for(term.wait(), 15)
    again = await signed_in("sessions", "end", session_id)
    assert_one_line_error(again, "session_ended")
    missing = await signed_in("sessions", "share", "ses_doesnotexist")
    assert_one_line_error(missing, "not_found")
    assert missing.code == 4


@pytest.fixture
def chub_url(signed_in: Cli) -> str:
    return signed_in.hub
