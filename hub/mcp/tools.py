"""The MCP tools: what an AI client may do on the hub, as the owner of its API token.

Each tool checks the token's scope as the matching REST call would (hub/scopes.py) and
calls the same services; errors come back as tool errors carrying the API's message.
Commands go through supervision (hub/approvals/): `run_command` is a supervised exec,
and when a person must decide it waits up to `mcp_tool_wait` seconds, then answers
with the approval's id so the AI can come back with `check_approval`; `send_keys` asks
the same guard (hub/approvals/guard.py), which lets an agent type only under `auto`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from aiohttp import web
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from common import __version__
from common.errors import ApiError, Forbidden, NotFound
from common.ids import has_prefix
from hub import audit, scopes
from hub.api.agents import exec_on
from hub.api.terminal import start_session
from hub.billing.plans import check_session_minutes
from hub.containers.service import CreateContainer
from hub.execution import ExecRequest
from hub.mcp.screen import current_screen
from hub.relay import Elsewhere
from hub.sessions.broker import Session
from hub.state import AGENTS, BROKER, CONTAINERS, DB, SETTINGS, SUPERVISOR
from hub.targets import resolve_target
from hub.tokens import Principal

PRINCIPAL = "rexec.principal"  # where the /mcp handler puts the caller in the ASGI scope
IP = "rexec.ip"
P = ParamSpec("P")
R = TypeVar("R")

INSTRUCTIONS = """Rexec runs commands in sandboxed Linux containers and on the user's servers.
Commands you run are supervised: the owner's policy may hold one for a person's approval,
and people may be watching the terminal. list_targets shows where you can run; run_command
runs one command and returns its output and exit code; send_keys and read_screen drive an
interactive terminal."""


def caller(ctx: Context) -> tuple[Principal, str | None]:
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    principal = scope.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        raise ToolError("Not authenticated.")
    return principal, scope.get(IP)


def need(principal: Principal, scope: str) -> None:
    if not principal.allows(scope):
        raise ToolError(f"This API token does not have the {scope!r} scope this tool needs.")


def api_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """The hub's errors as tool errors the model can read."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ApiError as err:
            raise ToolError(f"{err.message} ({err.code})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ToolError(f"{where}: {first['msg']} (invalid_request)") from None

    return run


def build(app: web.Application) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(
        name="rexec", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    settings = app[SETTINGS]

    async def owned_target(principal: Principal, target: str) -> str:
        return await resolve_target(app, principal.user.id, target)

    def live_session(principal: Principal, target: str, named: str | None) -> Session | None:
        broker = app[BROKER]
        if named:
            session = broker.get(named)
            if session is None or session.user_id != principal.user.id or session.target != target:
                raise NotFound("No such live session on this target.", code="session_not_found")
            return session
        mine = [s for s in broker.for_target(target) if s.user_id == principal.user.id and s.live]
        return max(mine, key=lambda s: s.started_at, default=None)

    @server.tool(description="List your containers and agents (servers): where commands can run.")
    @api_errors
    async def list_targets(ctx: Context) -> dict[str, Any]:
        principal, _ = caller(ctx)
        need(principal, scopes.READ)
        containers = await app[CONTAINERS].list_for(principal.user.id)
        agents = await app[AGENTS].list(principal.user.id)
        statuses = await app[AGENTS].statuses([a.id for a in agents])
        return {
            "containers": [
                {"id": c.id, "name": c.name, "image": c.image, "status": c.status}
                for c in containers
            ],
            "agents": [
                {"id": a.id, "name": a.name, "hostname": a.hostname, "status": statuses[a.id]}
                for a in agents
            ],
        }

    @server.tool(description="Create a sandbox container; returns it with its id (ctr_...).")
    @api_errors
    async def create_sandbox(
        ctx: Context, image: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        principal, _ = caller(ctx)
        need(principal, scopes.CONTAINERS)
        body = CreateContainer.model_validate({"image": image, "name": name})
        service = app[CONTAINERS]
        return service.to_json(await service.create(principal.user.id, body))

    @server.tool(description="Destroy a sandbox container you created.")
    @api_errors
    async def destroy_sandbox(ctx: Context, container_id: str) -> dict[str, Any]:
        principal, _ = caller(ctx)
        need(principal, scopes.CONTAINERS)
        await app[CONTAINERS].delete(principal.user.id, container_id)
        return {"destroyed": container_id}

    @server.tool(
        description="Run a shell command on a container or agent and return its exit code "
        "and output. The owner's policy may hold it for a person's approval: then this waits "
        "up to wait_seconds (default: the hub's limit) and, if nobody has decided by then, "
        "returns status 'pending' with an approval id for check_approval."
    )
    @api_errors
    async def run_command(
        ctx: Context,
        target: str,
        command: str,
        timeout_seconds: float | None = None,
        session: str | None = None,
        wait_seconds: float | None = None,
    ) -> dict[str, Any]:
        principal, ip = caller(ctx)
        need(principal, scopes.EXEC)
        target = await owned_target(principal, target)
        req = ExecRequest.model_validate(
            {"cmd": command, "timeout": timeout_seconds, "supervised": True, "session": session}
        )
        user_id = principal.user.id

        async def run(r: ExecRequest) -> dict[str, Any]:
            if has_prefix(target, "agt"):
                return await exec_on(app, target, r)
            return await app[CONTAINERS].exec(user_id, target, r)

        status, answer = await app[SUPERVISOR].submit(principal, target, req, run, ip=ip)
        if status == 200:
            return {"status": "completed", **answer}
        return await _approval_answer(principal, answer["approval"]["id"], wait_seconds)

    async def _approval_answer(
        principal: Principal, approval_id: str, wait: float | None
    ) -> dict[str, Any]:
        supervisor = app[SUPERVISOR]
        limit = settings.mcp_tool_wait
        wait = limit if wait is None else max(0.0, min(wait, limit))
        row = await supervisor.wait(principal.user.id, approval_id, wait)
        data = supervisor.to_json(row)
        answer: dict[str, Any] = {"status": row.status, "approval": approval_id}
        if row.status == "completed":
            return {**answer, **(row.result or {}), "cmd": row.cmd}
        if row.status in ("rejected", "expired"):
            return {**answer, "reason": row.reason}
        return {
            **answer,
            "reason": data["reason"],
            "message": "A person must approve this command; call check_approval later.",
        }

    @server.tool(
        description="Wait (a while) for a held command's decision and return its result, "
        "or its status if still undecided."
    )
    @api_errors
    async def check_approval(
        ctx: Context, approval_id: str, wait_seconds: float | None = None
    ) -> dict[str, Any]:
        principal, _ = caller(ctx)
        need(principal, scopes.READ)
        return await _approval_answer(principal, approval_id, wait_seconds)

    @server.tool(
        description="The current screen of the live terminal session on a target, as text "
        "(the newest session unless one is named). send_keys starts a session if none is live."
    )
    @api_errors
    async def read_screen(ctx: Context, target: str, session: str | None = None) -> dict[str, Any]:
        principal, _ = caller(ctx)
        need(principal, scopes.READ)
        target = await owned_target(principal, target)
        found = live_session(principal, target, session)
        if found is None:
            raise NotFound(
                "No live terminal session on this target; send_keys starts one.",
                code="session_not_found",
            )
        screen = current_screen(found)
        return {
            "session": found.id,
            "cols": found.cols,
            "rows": found.rows,
            "cursor": {"x": screen.cursor[0], "y": screen.cursor[1]},
            "screen": screen.text,
        }

    @server.tool(
        description="Type keys into the live terminal session on a target (starting one if "
        "none is live), as a person at the keyboard would: '\\n' is Enter, '\\u0003' Ctrl-C. "
        "People watching the session see them. Then read_screen shows the result."
    )
    @api_errors
    async def send_keys(
        ctx: Context, target: str, keys: str, session: str | None = None
    ) -> dict[str, Any]:
        principal, ip = caller(ctx)
        need(principal, scopes.EXEC)
        target = await owned_target(principal, target)
        verdict = await app[SUPERVISOR].check(principal.kind, target, "type")
        if verdict.action != "run":  # keystrokes cannot be held for a person
            raise Forbidden(verdict.reason, code=verdict.code)
        found = live_session(principal, target, session)
        if found is None:
            await check_session_minutes(app[DB], settings, principal.user.id)
            try:
                found = await start_session(app, principal.user.id, target, None, 80, 24)
            except Elsewhere:
                raise ToolError(
                    "This agent is connected to another hub of this service; open its "
                    "terminal from the web app or the CLI there (agent_elsewhere)."
                ) from None
        found.unattended()  # an AI-only session ends after the grace period of silence
        data = keys.encode()
        found.mark(f"AI keys: {keys[:200]!r}")
        await found.type_in(data)
        await audit.record(
            app[DB],
            "ai.keys",
            user_id=principal.user.id,
            target=found.id,
            ip=ip,
            detail={"on": target, "bytes": len(data), "by": principal.token_id},
        )
        return {"session": found.id, "sent": len(data)}

    return server
