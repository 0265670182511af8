"""The authorization matrix: every route of the hub, called by five callers, against one
declared table (docs/security.md, "The authorization matrix").

The routes come from the hub application's own router, so a route added without a row
in MATRIX fails this test until someone decides who may call it. The callers: the owner
of every object in the path (her sign-in), another user (his sign-in), a read-only API
token of the owner, the owner's default (agent-kind) API token while her targets are
paused, and nobody. The hub is a real process with the Docker engine (a running
container) and a registered agent.

Bodies are refused on purpose (an unknown field) wherever a route parses one, so a call
that gets past authorization answers 400 and changes nothing; the run routes get a real
command instead, so the paused agent reaches the supervision check. Calls that end
objects (deletions, resumes) come after every other call; the owner's on objects of her
own made afresh.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
from websockets.asyncio.client import connect

from hub.api.install import WHEEL
from hub.app import create_app
from hub.settings import HubSettings
from tests.containers.conftest import HubFactory, engine, make_hub
from tests.e2e.conftest import register_agent
from tests.security.conftest import token
from tests.support import Api, Hub

__all__ = ["engine", "make_hub"]

CALLERS = ("owner", "other", "read_only", "paused_ai", "nobody")
REFUSED_BODY = {"rexec_matrix_unknown_field": True}  # every Body refuses unknown fields
RUN_BODY = {"cmd": "true"}
HANG = aiohttp.ClientTimeout(total=60)  # a call that does not answer by then fails

# Outcome classes: "ok" got past authorization (2xx, or 400/409/422 about the body or the
# state), "401", "404" (unknown or not yours), "403" or "403 CODE".
OK, UNAUTH, NOTFOUND, SCOPE = "ok", "401", "404", "403 insufficient_scope"
PAUSED = "403 ai_paused"
PUBLIC = ("public",) * 5  # the same answer for every caller, none of them 401 or 403
MINE = (OK, NOTFOUND, OK, OK, UNAUTH)  # a read of an object: its owner's only
MINE_LIST = (OK, OK, OK, OK, UNAUTH)  # a list: everyone sees their own
WRITE_MINE = (OK, NOTFOUND, SCOPE, SCOPE, UNAUTH)  # a change needing `all`
ACCOUNT_WRITE = (OK, OK, SCOPE, SCOPE, UNAUTH)  # the caller's own account: `all`


@dataclass(frozen=True)
class Row:
    outcomes: tuple[str, str, str, str, str]  # in CALLERS order
    body: dict[str, Any] | None = None  # None: REFUSED_BODY for POST/PUT, none otherwise


MATRIX: dict[tuple[str, str], Row] = {
    # accounts
    ("POST", "/api/register"): Row(PUBLIC),
    ("POST", "/api/login"): Row(PUBLIC),
    ("POST", "/api/refresh"): Row(PUBLIC),
    ("POST", "/api/logout"): Row(PUBLIC),
    ("GET", "/api/user"): Row(MINE_LIST),
    ("POST", "/api/user/passcode"): Row(ACCOUNT_WRITE),
    ("DELETE", "/api/user/passcode"): Row(ACCOUNT_WRITE),
    ("POST", "/api/user/passcode/recovery-codes"): Row(ACCOUNT_WRITE),
    ("GET", "/api/user/tokens"): Row(MINE_LIST),
    ("POST", "/api/user/tokens"): Row(ACCOUNT_WRITE),
    ("GET", "/api/user/tokens/{id}"): Row(MINE),
    ("DELETE", "/api/user/tokens/{id}"): Row(WRITE_MINE),
    ("GET", "/api/user/keys"): Row(MINE_LIST),
    ("POST", "/api/user/keys"): Row(ACCOUNT_WRITE),
    ("GET", "/api/user/keys/{id}"): Row(MINE),
    ("DELETE", "/api/user/keys/{id}"): Row(WRITE_MINE),
    ("GET", "/api/audit"): Row(MINE_LIST),
    # containers
    ("POST", "/api/containers"): Row((OK, OK, "403 insufficient_scope", OK, UNAUTH)),
    ("GET", "/api/containers"): Row(MINE_LIST),
    ("GET", "/api/images"): Row(MINE_LIST),
    ("GET", "/api/containers/{id}"): Row(MINE),
    ("DELETE", "/api/containers/{id}"): Row((OK, NOTFOUND, SCOPE, OK, UNAUTH)),
    ("POST", "/api/containers/{id}/exec"): Row((OK, NOTFOUND, SCOPE, PAUSED, UNAUTH), RUN_BODY),
    ("GET", "/api/containers/{id}/policy"): Row(MINE),
    ("PUT", "/api/containers/{id}/policy"): Row(WRITE_MINE),
    ("POST", "/api/containers/{id}/policy/pause"): Row(WRITE_MINE),
    ("POST", "/api/containers/{id}/policy/resume"): Row(WRITE_MINE),
    # agents
    ("POST", "/api/agents/tokens"): Row((OK, OK, SCOPE, OK, UNAUTH)),
    ("POST", "/api/agents/register"): Row(PUBLIC),  # proves itself with a one-time token
    ("GET", "/api/agents"): Row(MINE_LIST),
    ("GET", "/api/agents/{id}"): Row(MINE),
    ("DELETE", "/api/agents/{id}"): Row((OK, NOTFOUND, SCOPE, OK, UNAUTH)),
    ("POST", "/api/agents/{id}/exec"): Row((OK, NOTFOUND, SCOPE, PAUSED, UNAUTH), RUN_BODY),
    # the agent's own link: only the agent's key proof opens it, no bearer token does
    ("GET", "/api/agents/{id}/ws"): Row((UNAUTH,) * 5),
    ("GET", "/api/agents/{id}/policy"): Row(MINE),
    ("PUT", "/api/agents/{id}/policy"): Row(WRITE_MINE),
    ("POST", "/api/agents/{id}/policy/pause"): Row(WRITE_MINE),
    ("POST", "/api/agents/{id}/policy/resume"): Row(WRITE_MINE),
    # terminals and sessions
    ("GET", "/ws/terminal/{id}"): Row((OK, NOTFOUND, SCOPE, PAUSED, UNAUTH)),
    ("GET", "/api/sessions"): Row(MINE_LIST),
    ("GET", "/api/sessions/{id}"): Row(MINE),
    ("DELETE", "/api/sessions/{id}"): Row((OK, NOTFOUND, SCOPE, OK, UNAUTH)),
    ("GET", "/api/sessions/{id}/recording"): Row(MINE),
    ("POST", "/api/sessions/{id}/share"): Row((OK, NOTFOUND, SCOPE, OK, UNAUTH)),
    ("GET", "/api/sessions/{id}/shares"): Row(MINE),
    ("DELETE", "/api/sessions/{id}/shares/{share_id}"): Row(WRITE_MINE),
    ("GET", "/api/shares/{token}"): Row(PUBLIC),  # the link itself is the credential
    # supervision
    ("GET", "/api/approvals"): Row(MINE_LIST),
    ("GET", "/api/approvals/{id}"): Row(MINE),
    ("POST", "/api/approvals/{id}/approve"): Row(WRITE_MINE, {}),
    ("POST", "/api/approvals/{id}/reject"): Row(WRITE_MINE, {}),
    ("GET", "/mcp"): Row((UNAUTH, UNAUTH, OK, OK, UNAUTH)),  # API tokens only
    ("POST", "/mcp"): Row((UNAUTH, UNAUTH, OK, OK, UNAUTH)),
    ("DELETE", "/mcp"): Row((UNAUTH, UNAUTH, OK, OK, UNAUTH)),
    # billing
    ("GET", "/api/billing/plans"): Row(PUBLIC),
    ("GET", "/api/billing/usage"): Row(MINE_LIST),
    ("POST", "/api/billing/subscribe"): Row(ACCOUNT_WRITE),
    ("POST", "/api/billing/webhook"): Row(PUBLIC),  # proves itself with Stripe's signature
    # operations, install, the web app
    ("GET", "/healthz"): Row(PUBLIC),
    ("GET", "/readyz"): Row(PUBLIC),
    ("GET", "/metrics"): Row(PUBLIC),
    ("GET", "/install.sh"): Row(PUBLIC),
    ("GET", "/install/agent.whl"): Row(PUBLIC),
    ("GET", "/install/agent-requirements.txt"): Row(PUBLIC),
    ("GET", "/install/rexec-agent.service"): Row(PUBLIC),
    ("GET", "/install/{wheel}"): Row(PUBLIC),
    ("GET", "/api/openapi.json"): Row(PUBLIC),  # the contract, as API.md is
    ("GET", "/docs"): Row(PUBLIC),
    ("GET", "/docs/{path}"): Row(PUBLIC),
    ("GET", "/pricing"): Row(PUBLIC),
    ("GET", "/assets/{name}"): Row(PUBLIC),
    ("GET", "/{tail}"): Row(PUBLIC),
}


def route_table(tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path template) of every route the hub serves, read from its application's
    router; HEAD goes with its GET, and the versioned wheel has one name."""
    app = create_app(HubSettings(data_dir=tmp_path / "routes", port=0, ssh_port=0))
    found: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.resource is None or route.method == "HEAD":
            continue
        path = route.resource.canonical
        found.add((route.method, "/install/{wheel}" if path == f"/install/{WHEEL}" else path))
    return sorted(found)


def outcome(status: int, body: Any) -> str:
    if status == 0:
        return "hangs"
    if status >= 500:
        return f"5xx ({status})"
    if status in (401, 404):
        return str(status)
    if status == 403:
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        return f"403 {code}"
    return OK


@dataclass
class World:
    """The owner's objects that the paths name."""

    container: str
    agent: str
    session: str
    share: str
    share_token: str
    token: str
    key: str
    approval: str = ""

    def path(self, template: str) -> str:
        by_section = {
            "/api/containers/": self.container,
            "/api/agents/": self.agent,
            "/api/sessions/": self.session,
            "/api/approvals/": self.approval,
            "/api/user/tokens/": self.token,
            "/api/user/keys/": self.key,
            "/ws/terminal/": self.agent,
        }
        section = next((v for k, v in by_section.items() if template.startswith(k)), "")
        names = {
            "{id}": section,
            "{share_id}": self.share,
            "{token}": self.share_token,
            "{name}": "app.js",
            "{wheel}": WHEEL,
            "{tail}": "containers",
            "{path}": "index.html",
        }
        for name, value in names.items():
            template = template.replace(name, value)
        return template


async def build_world(hub: Hub, owner: Api, tmp_path: Path) -> World:
    box = (await owner.ok("POST", "/api/containers", {"name": tmp_path.name}, 201))["id"]
    agent_id = await register_agent(hub, owner, tmp_path / "agent" / "agent.toml")
    ws_url = hub.url.replace("http", "ws") + f"/ws/terminal/{box}?token={owner.token}"
    async with connect(ws_url, compression=None) as ws:
        session = json.loads(await ws.recv())["id"]
    share = await owner.ok("POST", f"/api/sessions/{session}/share", {"role": "viewer"}, 201)
    shares = (await owner.ok("GET", f"/api/sessions/{session}/shares"))["shares"]
    spare = await owner.ok("POST", "/api/user/tokens", {"name": "spare"}, 201)
    public = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    key = await owner.ok("POST", "/api/user/keys", {"name": "k", "public_key": public}, 201)
    return World(
        container=box,
        agent=agent_id,
        session=session,
        share=shares[0]["id"],
        share_token=share["url"].rsplit("/share/", 1)[1],
        token=spare["id"],
        key=key["id"],
    )


async def call(api: Api, method: str, path: str, body: Any) -> tuple[int, Any]:
    """One call; the answer as JSON where it is JSON (some routes serve files)."""
    data = json.dumps(body) if body is not None else None
    headers = {**api.headers(), "Accept": "application/json, text/event-stream"}
    try:
        async with api.http.request(
            method, api.base + path, data=data, headers=headers, timeout=HANG
        ) as r:
            if r.content_type == "text/event-stream":  # MCP's stream: its answer is the status
                return r.status, None
            raw = await r.read()
    except TimeoutError:
        return 0, "no answer in time"
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, None


async def test_every_route_has_a_row_and_keeps_to_it(
    make_hub: HubFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    routes = route_table(tmp_path)
    missing = [r for r in routes if r not in MATRIX]
    assert not missing, f"routes with no row in MATRIX (decide who may call them): {missing}"
    assert not [r for r in MATRIX if r not in routes], "rows for routes the hub no longer has"

    hub = await make_hub()
    owner = await Api(http, hub.url).sign_up("owner@example.com")
    world = await build_world(hub, owner, tmp_path)
    ai = await token(owner, None)
    held_code, held = await ai.call(
        "POST", f"/api/containers/{world.container}/exec", {"cmd": "rm -rf /tmp/x"}
    )
    assert held_code == 202, held
    world.approval = held["approval"]["id"]
    for kind, target in (("containers", world.container), ("agents", world.agent)):
        await owner.ok("POST", f"/api/{kind}/{target}/policy/pause")
    callers = {
        "nobody": Api(http, hub.url),
        "other": await Api(http, hub.url).sign_up("other@example.com"),
        "read_only": await token(owner, None, ["read"]),
        "paused_ai": ai,
        "owner": owner,
    }
    got: dict[tuple[str, str, str], str] = {}
    wanted: dict[tuple[str, str, str], str] = {}

    async def walk(name: str, world: World, chosen: list[tuple[str, str]]) -> None:
        api = callers[name]
        for method, template in chosen:
            row = MATRIX[method, template]
            body = row.body
            if body is None and method in ("POST", "PUT"):
                body = REFUSED_BODY
            path = world.path(template)
            status, answer = await call(api, method, path, body)
            got[name, method, template] = outcome(status, answer)
            wanted[name, method, template] = row.outcomes[CALLERS.index(name)]
            if method == "GET":  # and its HEAD: never a 5xx
                async with http.head(hub.url + path, headers=api.headers()) as resp:
                    assert resp.status < 500, (name, path, resp.status)

    # What ends objects (deletions, resumes) goes last; the owner's on objects of her own
    # made afresh, since a caller allowed to delete (the AI's token may delete its
    # containers) leaves her nothing to delete.
    ending = [r for r in routes if r[0] == "DELETE" or r[1].endswith("/resume")]
    ending.sort(key=lambda r: r[0] == "DELETE")  # resume a target before deleting it
    lasting = [r for r in routes if r not in ending]
    for name in callers:
        await walk(name, world, lasting)
    for name in CALLERS[1:]:
        await walk(name, world, ending)
    await walk("owner", await build_world(hub, owner, tmp_path / "again"), ending)
    for route in MATRIX:  # a public route answers everyone alike, whatever that is
        if MATRIX[route].outcomes == PUBLIC:
            for name in CALLERS:
                wanted[(name, *route)] = got["nobody", *route]
                assert got["nobody", *route] not in ("401", "403"), route
    differ = [f"{k}: got {got[k]}, declared {wanted[k]}" for k in got if got[k] != wanted[k]]
    assert not differ, "outcomes that differ from MATRIX:\n" + "\n".join(differ)
