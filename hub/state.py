"""Typed keys for the long-lived objects the app holds (aiohttp AppKey)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import aiohttp

    from hub.accounts import Accounts
    from hub.agents.registry import AgentRegistry
    from hub.approvals.service import Supervisor
    from hub.billing.service import Billing
    from hub.bus import Bus
    from hub.cluster import Cluster
    from hub.containers.service import ContainerService
    from hub.db.engine import Database
    from hub.metrics import HubMetrics
    from hub.ratelimit import AbuseGuard
    from hub.sessions.broker import Broker
    from hub.sessions.shares import Shares
    from hub.settings import HubSettings
    from hub.ssh.gateway import Gateway

SETTINGS: web.AppKey[HubSettings] = web.AppKey("settings")
DB: web.AppKey[Database] = web.AppKey("db")
ACCOUNTS: web.AppKey[Accounts] = web.AppKey("accounts")
AGENTS: web.AppKey[AgentRegistry] = web.AppKey("agents")
BROKER: web.AppKey[Broker] = web.AppKey("broker")
CONTAINERS: web.AppKey[ContainerService] = web.AppKey("containers")
SHARES: web.AppKey[Shares] = web.AppKey("shares")
GUARD: web.AppKey[AbuseGuard] = web.AppKey("guard")
BILLING: web.AppKey[Billing] = web.AppKey("billing")
SSH: web.AppKey[Gateway] = web.AppKey("ssh")
BUS: web.AppKey[Bus] = web.AppKey("bus")
CLUSTER: web.AppKey[Cluster | None] = web.AppKey("cluster")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")  # hub-to-hub requests
METRICS: web.AppKey[HubMetrics] = web.AppKey("metrics")
# Hooks other parts fill (the Redis bus, for one): checks `/readyz` runs by name (each
# raises when its part is not ready), and steps of a graceful stop (hub/drain.py).
READY_CHECKS: web.AppKey[dict[str, Callable[[], Awaitable[None]]]] = web.AppKey("ready_checks")
DRAIN_STEPS: web.AppKey[list[Callable[[web.Application], Awaitable[None]]]] = web.AppKey(
    "drain_steps"
)
SUPERVISOR: web.AppKey[Supervisor] = web.AppKey("supervisor")
