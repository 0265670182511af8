"""Requests too malformed for aiohttp to parse (an 8 KiB URL, oversized headers) still
get the error shape from a real `rexec-hub serve`, and no ERROR line in its log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import Hub, assert_error


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    h = await Hub(tmp_path / "hub").start()
    yield h
    h.kill()


async def raw_request(hub: Hub, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes (a client library would refuse to), read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    top, _, body = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.mark.backend_independent
async def test_oversized_url_and_headers_get_the_error_shape(hub: Hub) -> None:
    assert hub.proc
    long_url = b"/api/user?x=" + b"a" * 8300
    cases = [
        (b"GET " + long_url + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414, "uri_too_long"),
        (b"GET /api/user HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, None),
        (
            b"GET /api/user HTTP/1.1\r\nHost: h\r\n" + b"X-" + b"c" * 9000 + b": 1\r\n\r\n",
            431,
            None,
        ),
        (b"GET /api/user HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n", 400, "invalid_request"),
    ]
    for head, status, code in cases:
        got, headers, body = await raw_request(hub, head)
        assert headers.get("content-type", "").startswith("application/json"), (got, headers)
        assert headers.get("x-content-type-options") == "nosniff", headers
        assert_error(got, json.loads(body), status, code)
    # The hub is fine and said nothing alarming about it.
    ok, _, _ = await raw_request(
        hub, b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    assert ok == 200
    log = hub.proc.output()
    assert "ERROR" not in log and "Traceback" not in log, log
