"""Operations endpoints on a hub over a real socket: `/metrics` (request histograms by
route template, a registry per app, the approvals and readiness hooks), request ids,
and the JSON log format."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from common import logfmt
from common.ids import new_id
from hub.app import create_app
from hub.db.models import Approval, Container
from hub.settings import HubSettings
from hub.state import DB, READY_CHECKS
from tests.support import Api, assert_error


async def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with api.http.get(api.base + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def count(route: str, status: str, method: str = "GET") -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = (("method", method), ("route", route), ("status", status))
    return ("rexec_http_request_duration_seconds_count", labels)


async def test_request_latency_by_route_template_and_status_class(api: Api) -> None:
    alice = await api.sign_up("alice@example.com")
    for _ in range(3):
        await alice.ok("GET", "/api/user")
    status, body = await api.call("GET", "/api/user")  # no token
    assert_error(status, body, 401)
    status, body = await alice.call("GET", "/api/containers/ctr_nothere")
    assert_error(status, body, 404)
    status, body = await api.call("GET", "/api/no/such/endpoint")
    assert_error(status, body, 404)
    m = await scrape(api)
    assert m[count("/api/user", "2xx")] == 3
    assert m[count("/api/user", "4xx")] == 1
    # Ids never become label values: the template does.
    assert m[count("/api/containers/{id}", "4xx")] == 1
    assert m[count("unmatched", "4xx")] == 1
    assert not any("ctr_nothere" in str(labels) for _, labels in m)
    assert m[count("/api/register", "2xx", "POST")] == 1
    assert m[("rexec_sessions_live", ())] == 0
    assert m[("rexec_relayed_bytes_total", (("direction", "out"),))] == 0


async def test_each_app_counts_only_its_own(api: Api, settings: HubSettings) -> None:
    other = TestServer(create_app(settings), host="127.0.0.1", port=0)
    await other.start_server()
    try:
        other_api = Api(api.http, str(other.make_url("")).rstrip("/"))
        for _ in range(2):
            await other_api.ok("GET", "/healthz")
        assert (await scrape(other_api))[count("/healthz", "2xx")] == 2
        assert count("/healthz", "2xx") not in await scrape(api)
    finally:
        await other.close()


async def test_request_id_is_echoed_or_made(api: Api) -> None:
    async def rid(sent: str | None) -> str:
        headers = {"X-Request-ID": sent} if sent is not None else {}
        async with api.http.get(api.base + "/healthz", headers=headers) as resp:
            return resp.headers["X-Request-ID"]

    assert await rid("lb-7f3a.91:2") == "lb-7f3a.91:2"
    made = await rid(None)
    assert len(made) == 24 and int(made, 16) >= 0
    assert await rid(None) != made
    for insane in ("x" * 129, "has space", "new\\nline", "<script>", ""):
        got = await rid(insane)
        assert got != insane and len(got) == 24
    # Errors carry it too.
    async with api.http.get(api.base + "/api/user", headers={"X-Request-ID": "r-401"}) as resp:
        assert resp.status == 401 and resp.headers["X-Request-ID"] == "r-401"


async def test_containers_and_approvals_gauges(api: Api, hub_server: TestServer) -> None:
    alice = await api.sign_up("alice@example.com")
    user = await alice.ok("GET", "/api/user")
    app = hub_server.app
    now = datetime.now(UTC)
    async with app[DB].session() as s:
        for status in ("running", "running", "ended"):
            s.add(
                Container(
                    id=new_id("ctr"),
                    user_id=user["id"],
                    name="c",
                    image="rexec/busybox:1",
                    status=status,
                    expires_at=now + timedelta(hours=1),
                )
            )
        await s.commit()
    m = await scrape(api)
    assert m[("rexec_containers_running", ())] == 2
    assert m[("rexec_approvals_pending", ())] == 0
    async with app[DB].session() as s:  # held commands, as the approvals service keeps them
        for status in ("pending", "pending", "rejected"):
            s.add(
                Approval(
                    id=new_id("apr"),
                    user_id=user["id"],
                    target="ctr_x",
                    cmd="rm -rf /tmp/x",
                    requested_by="tok_x",
                    status=status,
                    expires_at=now + timedelta(minutes=5),
                )
            )
        await s.commit()
    assert (await scrape(api))[("rexec_approvals_pending", ())] == 2


async def test_readyz_runs_the_registered_checks(api: Api, hub_server: TestServer) -> None:
    ready = await api.ok("GET", "/readyz")
    assert ready["checks"]["database"] == "ok"
    broken = False

    async def redis() -> None:
        if broken:
            raise ConnectionError("down")

    hub_server.app[READY_CHECKS]["redis"] = redis
    assert (await api.ok("GET", "/readyz"))["checks"]["redis"] == "ok"
    broken = True
    status, body = await api.call("GET", "/readyz")
    assert_error(status, body, 503, "redis_unavailable")


async def test_json_log_lines_carry_the_log_context() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logfmt.JsonFormatter())
    log = logging.getLogger("rexec.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        with logfmt.bound(request_id="r1"):
            logfmt.bind(session_id="ses_1")
            log.warning('with "quotes" and ✓', extra={"bytes": 3})
        log.warning("outside")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == 'with "quotes" and ✓'
    assert first["request_id"] == "r1" and first["session_id"] == "ses_1"
    assert first["bytes"] == 3 and first["level"] == "WARNING"
    assert "request_id" not in second and "session_id" not in second
    assert "ValueError: boom" in third["exc"]
