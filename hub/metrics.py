"""Prometheus metrics of one hub, in a registry of its own (two apps in one process,
as in tests, never mix their numbers), and the middleware that gives every HTTP
request an id and a latency sample.

What is counted where: live values (sessions, agents, bytes relayed) are read from the
broker and the agent registry when `/metrics` is scraped, so the hot path pays only an
integer addition; values that need the database (containers running) or a service
that may not exist yet (approvals pending) are refreshed by the scrape itself.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from common.logfmt import bound
from hub.db.models import Container
from hub.state import METRICS

if TYPE_CHECKING:
    from hub.agents.registry import AgentRegistry
    from hub.db.engine import Database
    from hub.sessions.broker import Broker

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
# Seconds; API calls take milliseconds, long polls and execs up to minutes.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Count = Callable[[], Awaitable[int]]


class _Relayed(Collector):
    """Bytes through the broker, read from its counters at scrape time."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "rexec_relayed_bytes",
            "Terminal bytes relayed: in = keystrokes to programs, out = program output.",
            labels=["direction"],
        )
        broker = self.metrics.broker
        family.add_metric(["in"], broker.bytes_in if broker else 0)
        family.add_metric(["out"], broker.bytes_out if broker else 0)
        yield family


class HubMetrics:
    """The hub's instruments. Services are attached as the app starts them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.broker: Broker | None = None
        self.agents: AgentRegistry | None = None
        self.db: Database | None = None
        self._approvals: Count | None = None
        r = self.registry
        self.requests = Histogram(
            "rexec_http_request_duration_seconds",
            "HTTP request latency by route template and status class.",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.websockets = Gauge(
            "rexec_websocket_connections",
            "Open WebSocket connections by route template.",
            ["route"],
            registry=r,
        )
        self.sessions_live = Gauge(
            "rexec_sessions_live", "Live terminal sessions on this hub.", registry=r
        )
        self.sessions_live.set_function(lambda: len(self.broker.sessions) if self.broker else 0)
        self.agents_online = Gauge(
            "rexec_agents_online", "Agents whose link this hub holds.", registry=r
        )
        self.agents_online.set_function(lambda: len(self.agents.live) if self.agents else 0)
        self.containers_running = Gauge(
            "rexec_containers_running",
            "Containers running, service-wide (every hub on the database reports it).",
            registry=r,
        )
        self.approvals_pending = Gauge(
            "rexec_approvals_pending", "Supervised commands awaiting a person.", registry=r
        )
        r.register(_Relayed(self))

    def count_approvals_with(self, count: Count) -> None:
        """The approvals service registers how to count pending approvals (until then
        the gauge reads 0)."""
        self._approvals = count

    async def render(self) -> bytes:
        """The exposition text, after refreshing what needs the database."""
        if self.db is not None:
            async with self.db.session() as s:
                running = await s.scalar(
                    select(func.count()).select_from(Container).where(Container.status == "running")
                )
            self.containers_running.set(running or 0)
        self.approvals_pending.set(await self._approvals() if self._approvals else 0)
        return generate_latest(self.registry)


_REQUEST_ID_KEY = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    """The id of this request: the caller's X-Request-ID when it is sane, else ours."""
    value = request.get(_REQUEST_ID_KEY)
    if value is None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        value = given if _SANE_ID.match(given) else secrets.token_hex(12)
        request[_REQUEST_ID_KEY] = value
    return value


def _route(request: web.Request) -> str:
    """The route template (`/api/containers/{id}`), never the raw path: label values
    must stay few."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id into the log context (and the answer's header, see `echo_request_id`);
    WebSockets counted while open; everything else timed by route and status class."""
    metrics = request.app[METRICS]
    route = _route(request)
    with bound(request_id=request_id(request)):
        if request.headers.get("Upgrade", "").lower() == "websocket":
            gauge = metrics.websockets.labels(route)
            gauge.inc()
            try:
                return await handler(request)
            finally:
                gauge.dec()
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.requests.labels(request.method, route, f"{status // 100}xx").observe(
                time.perf_counter() - started
            )


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, WebSocket upgrades included, names its id."""
    response.headers[REQUEST_ID_HEADER] = request_id(request)
