"""A graceful stop (SIGTERM): the hub has stopped accepting connections (aiohttp stops
its sites before the shutdown signal); here it tells every terminal client and agent
to move, with close code 1012 (service restart), so that behind a load balancer they
reconnect to another hub at once. Sessions are not ended: an agent keeps its programs
for resume, and whichever hub the agent reaches next takes them up from the database.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from hub.state import AGENTS, BROKER, DRAIN_STEPS

log = logging.getLogger("rexec.hub.drain")
RESTART_CODE = 1012  # RFC 6455 / IANA: service restart
MESSAGE = "The hub is restarting; reconnect to continue the session."


async def graceful_stop(app: web.Application) -> None:
    """on_shutdown: clients first (they get a message), then agent links."""
    if BROKER not in app:  # the app never finished starting
        return
    broker, registry = app[BROKER], app[AGENTS]
    clients = sum(1 for s in broker.sessions.values() for c in s.clients.values() if not c.hidden)
    log.info(
        "stopping gracefully: moving %d client(s) and %d agent(s)", clients, len(registry.live)
    )
    await broker.restarting(MESSAGE)
    links = [
        conn.shutdown(RESTART_CODE, "hub restarting", keep=registry.keep)
        for conn in list(registry.live.values())
    ]
    if links:
        await asyncio.wait([asyncio.ensure_future(link) for link in links], timeout=5.0)
    for step in app.get(DRAIN_STEPS, []):
        try:
            await step(app)
        except Exception:
            log.exception("a graceful-stop step failed")
