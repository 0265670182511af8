"""Agent endpoints: registration tokens, registration, listing, deletion, exec, and
the agent's own WebSocket."""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import Field

from common.errors import ProtocolError, RexecError
from common.protocol.messages import MAX_FRAME
from hub import commands
from hub.agents.connection import HELLO_TIMEOUT, AgentChannel, AgentConnection, Transport
from hub.api.approvals import supervised_exec
from hub.api.http import (
    Body,
    bearer_token,
    client_ip,
    iso,
    json_ok,
    parse_body,
    require_principal,
    require_user,
)
from hub.db.models import Agent
from hub.execution import ExecCollector, ExecRequest, collect
from hub.relay import relay_http, relayed
from hub.state import AGENTS, CLUSTER, GUARD, HTTP, SETTINGS
from hub.targets import resolve_target

log = logging.getLogger("rexec.hub.agents")
routes = web.RouteTableDef()


class TokenBody(Body):
    name: str | None = Field(None, max_length=200)
    expires_in: int | None = Field(None, ge=60, le=7 * 86400)


class RegisterBody(Body):
    token: str = Field(min_length=1, max_length=512)
    name: str = Field("", max_length=200)
    public_key: str = Field(min_length=1, max_length=4096)
    hostname: str = Field("", max_length=255)
    os: str = Field("", max_length=64)
    arch: str = Field("", max_length=64)
    version: str = Field("", max_length=64)


def public_url(request: web.Request) -> str:
    configured = request.app[SETTINGS].public_url
    return (configured or f"{request.scheme}://{request.host}").rstrip("/")


def agent_json(agent: Agent, status: str) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "hostname": agent.hostname,
        "os": agent.os,
        "arch": agent.arch,
        "version": agent.version,
        "status": status,
        "created_at": iso(agent.created_at),
        "last_seen": iso(agent.last_seen),
        "metrics": agent.metrics or {},
    }


@routes.post("/api/agents/tokens")
async def create_token(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, TokenBody)
    await request.app[GUARD].token_created(client_ip(request), user.id)
    token, row = await request.app[AGENTS].create_token(user.id, body.name, body.expires_in)
    hub = public_url(request)
    command = f"curl -fsSL {shlex.quote(hub + '/install.sh')} | sh -s -- --token {token}"
    return json_ok(
        {"token": token, "expires_at": iso(row.expires_at), "install_command": command}, 201
    )


@routes.post("/api/agents/register")
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterBody)
    agent = await request.app[AGENTS].register(body.token, body.model_dump(exclude={"token"}))
    return json_ok({"id": agent.id, "name": agent.name}, 201)


@routes.get("/api/agents")
async def list_agents(request: web.Request) -> web.Response:
    user = await require_user(request)
    agents = await request.app[AGENTS].list(user.id)
    status = await request.app[AGENTS].statuses([a.id for a in agents])
    return json_ok({"agents": [agent_json(a, status[a.id]) for a in agents]})


@routes.get("/api/agents/{id}")
async def get_agent(request: web.Request) -> web.Response:
    user = await require_user(request)
    agent = await request.app[AGENTS].get(user.id, request.match_info["id"])
    status = await request.app[AGENTS].statuses([agent.id])
    return json_ok(agent_json(agent, status[agent.id]))


@routes.delete("/api/agents/{id}")
async def delete_agent(request: web.Request) -> web.Response:
    user = await require_user(request)
    registry = request.app[AGENTS]
    agent = await registry.get(user.id, request.match_info["id"])
    # SSH connections to it are told why first (terminal sockets end with its sessions).
    await commands.kick(
        request.app, 4404, "The agent was deleted.", tag="target", value=agent.id, here_first=True
    )
    await registry.delete(user.id, agent.id)
    await commands.agent_deleted(request.app, agent.id)  # whichever hub holds its link
    return web.Response(status=204)


@routes.post("/api/agents/{id}/exec")
async def exec_on_agent(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    registry = request.app[AGENTS]
    # by id or name, as everywhere a target is named
    target = await resolve_target(
        request.app, principal.user.id, request.match_info["id"], ("agt",)
    )
    if not relayed(request) and (url := await registry.elsewhere(target)) is not None:
        cluster = request.app[CLUSTER]
        assert cluster is not None  # the hub holding the agent runs (and supervises) it
        return await relay_http(request, request.app[HTTP], url, cluster.node_id)
    body = await parse_body(request, ExecRequest)
    app = request.app
    return await supervised_exec(
        request, principal, target, body, lambda req: exec_on(app, target, req)
    )


async def exec_on(app: web.Application, agent_id: str, body: ExecRequest) -> dict[str, Any]:
    """Run one command on an agent to completion (API `exec`)."""
    registry = app[AGENTS]
    settings = app[SETTINGS]
    timeout = min(body.timeout or settings.exec_default_timeout, settings.exec_max_timeout)
    conn = registry.connection(agent_id)
    started = time.monotonic()
    channel = await conn.open_channel("exec", body.argv(), env=body.env, cwd=body.workdir)
    collector = ExecCollector(settings.exec_output_limit)
    channel.on_stderr = collector.on_stderr
    channel.events = collector  # replays what arrived before, and an early exit
    return await collect(channel, collector, body, timeout, started)


@routes.get("/api/agents/{id}/ws")
async def agent_socket(request: web.Request) -> web.StreamResponse:
    """The agent's own link: it proves itself with a token signed by its key."""
    registry = request.app[AGENTS]
    agent = await registry.authenticate(request.match_info["id"], bearer_token(request))
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_FRAME + 64, heartbeat=20)
    await ws.prepare(request)
    closer = _Closer(ws)
    conn = AgentConnection(
        agent.id, Transport(ws.send_bytes, closer), request.app[SETTINGS].session_window
    )
    conn.start()
    try:
        first = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT)
        if first.type is not WSMsgType.BINARY:
            await conn.shutdown(4400, "expected a Hello frame")
            return ws
        hello = await conn.handshake(first.data)
        await registry.attach(conn, hello)
        log.info("agent %s connected (version %s)", agent.id, hello.agent_version)
        async for msg in ws:
            if closer.wanted is not None:
                await closer.close_here()
                break
            if msg.type is not WSMsgType.BINARY:
                raise ProtocolError("agent frames are binary")
            conn.feed(msg.data)
    except TimeoutError:
        await conn.shutdown(4408, "no Hello in time")
    except RexecError as exc:
        log.warning("agent %s link error: %s", agent.id, exc)
        await conn.shutdown(exc.close_code if exc.status < 500 else 1011, exc.message[:120])
    finally:
        # An agent that says it is stopping (1001) takes its terminals with it; any
        # other loss of the link leaves them waiting for the agent to come back.
        await registry.link_ended(conn, keep=ws.close_code != 1001)
        log.info("agent %s disconnected (close %s)", agent.id, ws.close_code)
    return ws


class _Closer:
    """Closes the agent's socket from the task that reads it. aiohttp, asked to close
    from another task, drops the connection without reading the agent's reply; with
    the agent's output still arriving the kernel then resets the connection and the
    agent never sees the close code (1012: move to another hub; 4403: deleted)."""

    HANDOVER = 1.0  # seconds for the reader to take the close over (it needs a frame)

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.wanted: tuple[int, str] | None = None
        self._done = asyncio.Event()

    async def __call__(self, code: int, reason: str) -> None:
        if self.ws.closed:
            return
        self.wanted = (code, reason)
        try:
            await asyncio.wait_for(self._done.wait(), self.HANDOVER)
        except TimeoutError:  # a quiet link: nothing unread, closing from here is clean
            await self.ws.close(code=code, message=reason.encode()[:120])

    async def close_here(self) -> None:
        assert self.wanted is not None
        code, reason = self.wanted
        try:  # reads on until the agent's own close frame (aiohttp's receive timeout)
            await self.ws.close(code=code, message=reason.encode()[:120])
        finally:
            self._done.set()


__all__ = ["AgentChannel", "routes"]
