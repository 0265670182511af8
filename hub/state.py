"""Typed keys for the long-lived objects the app holds (aiohttp AppKey)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import aiohttp

    from hub.accounts import Accounts
    from hub.agents.registry import AgentRegistry
    from hub.billing.service import Billing
    from hub.bus import Bus
    from hub.cluster import Cluster
    from hub.containers.service import ContainerService
    from hub.db.engine import Database
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
