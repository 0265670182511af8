"""Orders that every hub carries out for what it holds: end these sockets, close this
agent's link, end this session. Published on the bus, so with several hubs the one
holding the socket, link or session acts, wherever the order was given; a hub that
runs alone receives its own orders the same way.

A live connection remembers what let it in as `tags`: a terminal socket its sign-in
(`family`), API token (`token`) or share (`share`); an SSH connection its key
(`ssh_key`) and target (`target`); an agent's credential (hub/approvals/guard.py) also
`ai_target` (the target it is on) and, while it may type there, `ai_keys`. A `kick`
ends the terminal sockets and the SSH connections whose user and tags match, each
telling its client why in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from aiohttp import web

from hub.state import AGENTS, BROKER, BUS, CLUSTER, SSH

log = logging.getLogger("rexec.hub.commands")
TOPIC = "hubs"


class Holder(Protocol):
    """A live connection as a kick sees it: a broker client or an SSH connection."""

    @property
    def user_id(self) -> str | None: ...  # None: an SSH connection not yet authenticated

    @property
    def tags(self) -> dict[str, str]: ...


async def kick(
    app: web.Application,
    code: int,
    reason: str,
    *,
    user: str | None = None,
    tag: str | None = None,
    value: str | None = None,
    error: str = "access_ended",
    here_first: bool = False,
) -> None:
    """Close the sockets and SSH connections of `user` (if given) that carry `tag` (with
    `value`, if given); `code` is the WebSocket close code, `reason` what clients are
    told, `error` the code of the error message sockets get first. `here_first`: this
    hub acts before the caller goes on (before it deletes what the connections reach,
    say); the other hubs when the order reaches them."""
    order = {"op": "kick", "code": code, "reason": reason, "user": user, "tag": tag}
    order["value"], order["error"] = value, error
    if here_first:
        _kick_here(app, order)
    await app[BUS].publish(TOPIC, order)


async def agent_deleted(app: web.Application, agent_id: str) -> None:
    await app[BUS].publish(TOPIC, {"op": "agent_deleted", "agent": agent_id})


async def end_session(app: web.Application, session_id: str) -> None:
    await app[BUS].publish(TOPIC, {"op": "end_session", "session": session_id})


async def session_moved(app: web.Application, session_id: str, node: str) -> None:
    """`node` took this session up (its agent came to it): any other holder lets go."""
    await app[BUS].publish(TOPIC, {"op": "session_moved", "session": session_id, "node": node})


def _matches(order: dict[str, Any]) -> Callable[[Holder], bool]:
    user, tag, value = order.get("user"), order.get("tag"), order.get("value")

    def match(holder: Holder) -> bool:
        if user is not None and holder.user_id != user:
            return False
        if tag is not None:
            if tag not in holder.tags:
                return False
            if value is not None and holder.tags[tag] != value:
                return False
        return True

    return match


def _kick_here(app: web.Application, order: dict[str, Any]) -> None:
    code, reason = int(order.get("code", 4401)), str(order.get("reason", ""))
    match = _matches(order)
    app[BROKER].kick_all(match, code, reason, str(order.get("error") or "access_ended"))
    gateway = app.get(SSH)
    if gateway is not None:
        gateway.kick(match, reason)


async def carry_out(app: web.Application, order: dict[str, Any]) -> None:
    op = order.get("op")
    if op == "kick":
        _kick_here(app, order)
    elif op == "agent_deleted":
        await app[AGENTS].forget(str(order.get("agent")))
    elif op == "session_moved":
        cluster = app[CLUSTER]
        if cluster is not None and order.get("node") != cluster.node_id:
            await app[AGENTS].let_go_of(str(order.get("session")))
    elif op == "end_session":
        session = app[BROKER].get(str(order.get("session")))
        if session is not None:
            session.close()
    else:
        log.warning("ignored an unknown order %r", op)


async def commands_context(app: web.Application) -> AsyncIterator[None]:
    ready = asyncio.Event()

    async def listen() -> None:
        async with app[BUS].subscribe(TOPIC) as orders:
            ready.set()
            async for order in orders:
                try:
                    await carry_out(app, order)
                except Exception:
                    log.exception("order %r failed", order.get("op"))

    task = asyncio.get_running_loop().create_task(listen())
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # the subscription failed: say why, do not start half-deaf
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
