"""Operations on a real hub process with a real agent: Prometheus metrics of a live
session, JSON logs carrying request and session ids, and a graceful stop (SIGTERM)
that moves clients and agents with close code 1012 and keeps the sessions."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.e2e.conftest import RunningAgent
from tests.e2e.test_sessions import LINES, assert_every_line_once, first_message, read_until, url
from tests.support import Api, Hub, wait_for


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """This module's hub writes JSON logs."""
    h = await Hub(tmp_path / "hub", env={"REXEC_LOG_FORMAT": "json"}).start()
    yield h
    h.kill()


async def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`/metrics` parsed by Prometheus' own parser: sample (name, labels) -> value."""
    async with api.http.get(api.base + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def json_logs(hub: Hub) -> list[dict[str, Any]]:
    assert hub.proc is not None
    return [json.loads(line) for line in hub.proc.lines if line.startswith("{")]


async def test_metrics_and_json_logs_of_a_live_session(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    async with connect(
        url(hub, agent.id, token=owner.token),
        additional_headers={"X-Request-ID": "req-ops-42"},
        compression=None,
    ) as ws:
        assert ws.response is not None
        assert ws.response.headers["X-Request-ID"] == "req-ops-42"
        sid = (await first_message(ws))["id"]
        keys = b"echo $((6*7))\n"
        await ws.send(keys)
        await read_until(ws, b"42\r\n")

        m = await scrape(owner)
        assert m[("rexec_sessions_live", ())] == 1
        assert m[("rexec_agents_online", ())] == 1
        assert m[("rexec_relayed_bytes_total", (("direction", "in"),))] >= len(keys)
        assert m[("rexec_relayed_bytes_total", (("direction", "out"),))] >= len(b"42\r\n")
        assert m[("rexec_websocket_connections", (("route", "/ws/terminal/{id}"),))] == 1
        assert m[("rexec_websocket_connections", (("route", "/api/agents/{id}/ws"),))] == 1
        assert m[("rexec_containers_running", ())] == 0
        assert m[("rexec_approvals_pending", ())] == 0
        polled = (
            ("method", "GET"),
            ("route", "/api/agents/{id}"),
            ("status", "2xx"),
        )  # start_agent polled it until the agent was online
        assert m[("rexec_http_request_duration_seconds_count", polled)] >= 1
        assert m[("rexec_http_request_duration_seconds_bucket", (("le", "+Inf"), *polled))] >= 1

    # The session's log line names the request that opened it and the session.
    started = await wait_for(
        lambda: [e for e in json_logs(hub) if e["msg"] == f"session started on {agent.id}"],
        10,
        what="the session's log line",
    )
    assert started[0]["request_id"] == "req-ops-42"
    assert started[0]["session_id"] == sid
    assert started[0]["level"] == "INFO" and started[0]["ts"].endswith("Z")
    # Every log line is one JSON object; only the two announcements are plain text.
    assert hub.proc is not None
    for line in hub.proc.lines:
        if not line.startswith("{"):
            assert line.startswith(("listening on ", "ssh gateway on ")), line
    # A socket closed: the gauges follow.
    m = await scrape(owner)
    assert m[("rexec_websocket_connections", (("route", "/ws/terminal/{id}"),))] == 0

    # A graceful stop tells the agent to move: its link is closed with 1012.
    hub.proc.popen.send_signal(signal.SIGTERM)
    assert await hub.proc.wait_exit(15) == 0
    await wait_for(
        lambda: "hub link down: connection closed (1012)" in agent.proc.output(),
        10,
        what="the agent told 1012",
    )
    assert agent.proc.popen.poll() is None


async def test_sigterm_moves_clients_and_agents_and_keeps_the_session(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    """A stream of numbered lines; SIGTERM mid-stream; the client is told
    `hub_restarting` and closed with 1012, the hub exits 0 without ending the session,
    and once a hub is back on the address the agent returns and the client rejoins with
    every line exactly once."""
    assert owner.token and hub.proc
    out = bytearray()
    notices: list[dict[str, Any]] = []
    close_code = None
    stopped_at = 0.0
    ws = await connect(
        url(hub, agent.id, token=owner.token, command="seq%201%20200000"),
        compression=None,
        max_size=None,
    )
    sid = (await first_message(ws))["id"]
    try:
        async with asyncio.timeout(30):
            async for msg in ws:
                if isinstance(msg, bytes):
                    out += msg
                    if not stopped_at and out.count(b"\n") >= 40_000:
                        stopped_at = time.monotonic()
                        hub.proc.popen.send_signal(signal.SIGTERM)
                else:
                    notices.append(json.loads(msg))
    except ConnectionClosedError as exc:
        close_code = exc.rcvd.code if exc.rcvd else None
    assert stopped_at, "the stream ended before the stop"
    assert close_code == 1012
    assert [n for n in notices if n["type"] not in ("participants", "resize")] == [
        {
            "type": "error",
            "code": "hub_restarting",
            "message": "The hub is restarting; reconnect to continue the session.",
        }
    ]
    assert await hub.proc.wait_exit(15) == 0
    assert time.monotonic() - stopped_at < 10
    assert agent.proc.popen.poll() is None  # the agent moves; it does not stop
    # Even with output streaming, the agent is told why (1012), not merely cut off.
    await wait_for(
        lambda: "hub link down: connection closed (1012)" in agent.proc.output(),
        10,
        what="the agent told 1012 under load",
    )

    restarted = await Hub(hub.data_dir, env=hub.env, port=hub.port).start()
    try:
        # The graceful stop did not end the session: it is still live on record.
        assert (await owner.ok("GET", f"/api/sessions/{sid}"))["status"] == "live"
        deadline = time.monotonic() + 60
        finished = False
        while not finished and time.monotonic() < deadline:
            address = url(hub, agent.id, token=owner.token, session=sid, offset=len(out))
            try:
                async with connect(address, compression=None, max_size=None) as again:
                    assert (await first_message(again))["offset"] == len(out)
                    async for msg in again:
                        if isinstance(msg, bytes):
                            out += msg
                        elif json.loads(msg)["type"] == "exit":
                            finished = True
                            break
            except InvalidStatus as exc:  # the agent is not back yet
                assert exc.response.status_code == 409, exc
                await asyncio.sleep(0.2)
        assert finished
        assert len(out.splitlines()) == LINES
        assert_every_line_once(bytes(out))
    finally:
        restarted.kill()
