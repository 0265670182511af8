"""The signed-in user's SSH public keys, for the SSH gateway (API.md: Accounts and tokens)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from hub import audit, commands
from hub.api.http import Body, client_ip, iso, json_ok, parse_body, require_principal
from hub.approvals.guard import Kind, may_create
from hub.db.models import SshKey
from hub.ssh.keys import SshKeys
from hub.state import DB

routes = web.RouteTableDef()


class KeyBody(Body):
    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(min_length=1, max_length=16 << 10)
    kind: Kind = "agent"  # a person's or an agent's key (hub/approvals/guard.py)


def key_json(row: SshKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "fingerprint": row.fingerprint,
        "algorithm": row.algorithm,
        "kind": row.kind,
        "public_key": row.public_key,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
    }


@routes.post("/api/user/keys")
async def add_key(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse_body(request, KeyBody)
    may_create(principal.kind, body.kind)
    user_id = principal.user.id
    row = await SshKeys(request.app[DB]).add(user_id, body.name, body.public_key, body.kind)
    await audit.record(
        request.app[DB],
        "ssh_key.added",
        user_id=user_id,
        target=row.id,
        ip=client_ip(request),
        detail={"name": row.name, "fingerprint": row.fingerprint, "kind": row.kind},
    )
    return json_ok(
        {"id": row.id, "name": row.name, "fingerprint": row.fingerprint, "kind": row.kind}, 201
    )


@routes.get("/api/user/keys")
async def list_keys(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    rows = await SshKeys(request.app[DB]).list(principal.user.id)
    return json_ok({"keys": [key_json(r) for r in rows]})


@routes.get("/api/user/keys/{id}")
async def get_key(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    row = await SshKeys(request.app[DB]).get(principal.user.id, request.match_info["id"])
    return json_ok(key_json(row))


@routes.delete("/api/user/keys/{id}")
async def delete_key(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    row = await SshKeys(request.app[DB]).delete(principal.user.id, request.match_info["id"])
    reason = "The SSH key of this connection was removed."
    await commands.kick(request.app, 4401, reason, tag="ssh_key", value=row.id)
    await audit.record(
        request.app[DB],
        "ssh_key.removed",
        user_id=principal.user.id,
        target=row.id,
        ip=client_ip(request),
        detail={"fingerprint": row.fingerprint},
    )
    return web.Response(status=204)
