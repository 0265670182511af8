"""The hub's aiohttp application factory; each long-lived resource is a cleanup context."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from hub import commands
from hub.accounts import Accounts
from hub.agents.registry import AgentRegistry
from hub.api import (
    accounts,
    agents,
    approvals,
    audit,
    billing,
    containers,
    ops,
    sessions,
    site,
    terminal,
    user,
)
from hub.api import web as web_app
from hub.api.http import errors_middleware
from hub.api.install import routes as install_routes
from hub.api.keys import routes as key_routes
from hub.approvals.policy import Verdict
from hub.approvals.service import Supervisor
from hub.billing.enforce import plan_limits_middleware
from hub.billing.service import billing_context
from hub.billing.usage import SessionMeter
from hub.bus import LocalBus
from hub.cluster import Cluster, RedisBus, new_node_id
from hub.commands import commands_context
from hub.containers.engine import Engine
from hub.containers.service import ContainerService
from hub.datadir import secure
from hub.db.engine import Database
from hub.drain import graceful_stop
from hub.mcp.endpoint import add_routes as add_mcp_routes
from hub.mcp.endpoint import mcp_context
from hub.metrics import HubMetrics, echo_request_id, observe_middleware
from hub.ratelimit import memory_guard, share_counters
from hub.relay import RELAYS, close_relays
from hub.sessions.broker import Broker, Session, in_turn
from hub.sessions.recorder import Recorder, recording_path
from hub.sessions.retention import retention_context
from hub.sessions.shares import Shares, expiry_context
from hub.sessions.store import SessionStore
from hub.settings import HubSettings
from hub.ssh.gateway import ssh_context
from hub.state import (
    ACCOUNTS,
    AGENTS,
    BROKER,
    BUS,
    CLUSTER,
    CONTAINERS,
    DB,
    DRAIN_STEPS,
    GUARD,
    HTTP,
    METRICS,
    READY_CHECKS,
    SETTINGS,
    SHARES,
    SUPERVISOR,
)

log = logging.getLogger("rexec.hub")


def jwt_secret(settings: HubSettings) -> str:
    """The configured secret, or one generated on first start and kept (mode 0600)."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    path = settings.data_dir / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def create_app(settings: HubSettings) -> web.Application:
    app = web.Application(
        middlewares=[observe_middleware, errors_middleware, plan_limits_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = HubMetrics()
    app[READY_CHECKS] = {}
    app[DRAIN_STEPS] = []
    app.on_response_prepare.append(echo_request_id)
    app.on_response_prepare.append(web_app.no_sniff)
    app.on_shutdown.append(graceful_stop)
    app[GUARD] = memory_guard(settings.rate_limits, enabled=settings.rate_limits_enabled)
    app[BUS] = LocalBus()
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_cluster)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(commands_context)
    app.cleanup_ctx.append(billing_context)
    app.cleanup_ctx.append(retention_context)
    app.cleanup_ctx.append(expiry_context)
    app.cleanup_ctx.append(ssh_context)
    app.cleanup_ctx.append(mcp_context)
    for module in (
        accounts,
        agents,
        containers,
        sessions,
        terminal,
        ops,
        user,
        billing,
        audit,
        approvals,
        site,
    ):
        app.add_routes(module.routes)
    app.add_routes(install_routes)
    app.add_routes(key_routes)
    add_mcp_routes(app)
    app.add_routes(web_app.routes)  # last: the app's catch-all for client-side routes
    return app


def start_recording(settings: HubSettings, store: SessionStore, session: Session) -> None:
    """Every session is recorded by a hidden client of its own (see recorder.py)."""
    try:
        recorder = Recorder(
            recording_path(settings.recordings, session.id),
            started=session.started_at.timestamp(),
            cols=session.cols,
            rows=session.rows,
            title=session.id,
            on_closed=lambda size, duration: store.recorded(session.id, size, duration),
        )
    except OSError as exc:
        log.warning("session %s is not recorded: %s", session.id, exc)
        return
    if session.awaiting_offset:  # taken up after a restart: once a client says where
        session.deferred.append(("recorder", "writer", recorder))
    else:
        session.attach("recorder", "writer", recorder, hidden=True)


async def _storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    secure(settings.data_dir)
    db = Database(settings.effective_database_url)
    await db.migrate()
    secure(settings.data_dir)  # the database files migrate may just have made
    app[DB] = db
    app[METRICS].db = db
    yield
    await db.close()


async def _cluster(app: web.Application) -> AsyncIterator[None]:
    """With Redis configured this hub is one node of several (docs/cluster.md)."""
    settings = app[SETTINGS]
    app[HTTP] = aiohttp.ClientSession()
    app[CLUSTER] = None
    app[RELAYS] = set()
    app[DRAIN_STEPS].append(close_relays)
    bus: RedisBus | None = None
    if settings.redis_url:
        node = new_node_id()
        cluster = Cluster.connect(settings.redis_url, node, settings.redis_prefix)
        await cluster.start()
        if settings.advertise_url or settings.port:  # known before binding: say it now
            await cluster.advertise(
                settings.advertise_url or f"http://{settings.host}:{settings.port}"
            )
        bus = RedisBus(cluster.redis, node, settings.redis_prefix)
        await bus.start()
        app[CLUSTER], app[BUS] = cluster, bus

        async def redis_ready() -> None:
            await cluster.redis.ping()

        app[READY_CHECKS]["redis"] = redis_ready
        app[DRAIN_STEPS].append(lambda _app: cluster.let_go_of_all())
        share_counters(app[GUARD], cluster.redis, settings.redis_prefix)
        log.info("node %s of a cluster on Redis", node)
    yield
    if bus is not None:
        await bus.close()
    cluster_ = app[CLUSTER]
    if cluster_ is not None:
        await cluster_.close()
    await app[HTTP].close()


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = app[DB]
    store = SessionStore(db)
    cluster = app[CLUSTER]
    app[ACCOUNTS] = Accounts(db, settings, jwt_secret(settings), app[GUARD])
    if sealed := await app[ACCOUNTS].passcodes.seal_plaintext():
        log.info("sealed %d passcode secrets stored in plaintext", sealed)
    meter = SessionMeter(db)

    async def supervision_ended(session: Session) -> None:
        await supervisor.session_ended(session)  # made just below; hooks run later

    async def let_go(session: Session) -> None:
        if cluster is not None:  # several hubs: this one no longer holds it
            await cluster.let_go("session", session.id)

    broker = Broker(
        window=settings.session_window,
        scrollback=settings.scrollback_bytes,
        client_queue=settings.client_queue_bytes,
        grace=settings.session_grace_seconds,
        on_start=in_turn(store.started, meter.started),
        on_end=in_turn(store.ended, meter.ended, supervision_ended, let_go),
    )
    app[BROKER] = broker
    app[SHARES] = Shares(db, app[GUARD])
    supervisor = app[SUPERVISOR] = Supervisor(db, settings, app[BUS], broker)
    app[METRICS].count_approvals_with(supervisor.count_pending)

    async def supervision_changed(target: str, tag: str, why: Verdict) -> None:
        await commands.kick(app, 4403, why.reason, tag=tag, value=target, error=why.code)

    supervisor.on_change = supervision_changed

    def created(session: Session) -> None:
        if cluster is not None:
            cluster.hold_soon("session", session.id)
        if settings.recording_enabled:
            start_recording(settings, store, session)
        supervisor.session_created(session)

    broker.on_create = created
    app[AGENTS] = AgentRegistry(db, settings, broker, cluster)
    app[AGENTS].orphans = await store.orphans(cluster)
    if cluster is not None:
        node = cluster.node_id
        app[AGENTS].on_moved = lambda sid: commands.session_moved(app, sid, node)
    app[AGENTS].orphans_expire_in(settings.session_grace_seconds)
    app[METRICS].broker, app[METRICS].agents = broker, app[AGENTS]
    engine = Engine(settings.docker_host)
    app[CONTAINERS] = ContainerService(db, settings, engine, broker)
    await app[CONTAINERS].start()
    supervisor.start()
    yield
    await supervisor.stop()
    await broker.shutdown()
    await app[AGENTS].shutdown()
    await app[CONTAINERS].stop()
    await engine.close()
