"""The signed-in user's API tokens and passcode (API.md: Accounts and tokens)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import Field, field_validator

from common.errors import Conflict, NotFound
from hub import audit, commands
from hub.api.http import Body, client_ip, iso, json_ok, parse_body, require_principal
from hub.approvals.guard import Kind, may_create
from hub.db.models import ApiToken
from hub.scopes import SCOPES
from hub.state import ACCOUNTS, DB, GUARD

routes = web.RouteTableDef()
T = TypeVar("T")


class TokenBody(Body):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] | None = Field(None, min_length=1, max_length=len(SCOPES))
    expires_in: int | None = Field(None, ge=60, le=5 * 366 * 86400)
    kind: Kind = "agent"

    @field_validator("scopes")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        for scope in v or []:
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
        return v


class PasscodeBody(Body):
    code: str | None = Field(None, min_length=1, max_length=32)


class CodeBody(Body):
    code: str = Field(min_length=1, max_length=32)


def token_json(row: ApiToken) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "scopes": list(row.scopes),
        "kind": row.kind,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "last_used_at": iso(row.last_used_at),
    }


def _require_enabled(enabled: bool) -> None:
    if not enabled:
        raise Conflict("No passcode is enabled.", code="passcode_not_enabled")


@routes.post("/api/user/tokens")
async def create_token(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse_body(request, TokenBody)
    may_create(principal.kind, body.kind)
    ip, user_id = client_ip(request), principal.user.id
    await request.app[GUARD].token_created(ip, user_id)
    token, row = await request.app[ACCOUNTS].tokens.create(
        user_id, body.name, body.scopes, body.expires_in, body.kind
    )
    await audit.record(
        request.app[DB],
        "token.created",
        user_id=user_id,
        target=row.id,
        ip=ip,
        detail={"name": row.name, "scopes": list(row.scopes), "kind": row.kind},
    )
    return json_ok(
        {
            "id": row.id,
            "token": token,
            "name": row.name,
            "scopes": list(row.scopes),
            "kind": row.kind,
            "expires_at": iso(row.expires_at),
        },
        201,
    )


@routes.get("/api/user/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    rows = await request.app[ACCOUNTS].tokens.list(principal.user.id)
    return json_ok({"tokens": [token_json(r) for r in rows]})


@routes.get("/api/user/tokens/{id}")
async def get_token(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    for row in await request.app[ACCOUNTS].tokens.list(principal.user.id):
        if row.id == request.match_info["id"]:
            return json_ok(token_json(row))
    raise NotFound("No such token.", code="token_not_found")


@routes.delete("/api/user/tokens/{id}")
async def revoke_token(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    row = await request.app[ACCOUNTS].tokens.revoke(principal.user.id, request.match_info["id"])
    await commands.kick(request.app, 4401, "The API token was revoked.", tag="token", value=row.id)
    await audit.record(
        request.app[DB],
        "token.revoked",
        user_id=principal.user.id,
        target=row.id,
        ip=client_ip(request),
    )
    return web.Response(status=204)


@routes.post("/api/user/passcode")
async def passcode(request: web.Request) -> web.Response:
    """`{}` starts the set-up (secret and otpauth URI); `{code}` confirms and enables it."""
    principal = await require_principal(request)
    body = await parse_body(request, PasscodeBody)
    passcodes, user_id = request.app[ACCOUNTS].passcodes, principal.user.id
    if body.code is None:
        secret, uri = await passcodes.begin(user_id)
        return json_ok({"secret": secret, "otpauth_uri": uri, "enabled": False})
    code = body.code
    codes = await _checked(request, user_id, lambda: passcodes.confirm(user_id, code), "enabled")
    return json_ok({"enabled": True, "recovery_codes": codes})


@routes.delete("/api/user/passcode")
async def remove_passcode(request: web.Request) -> web.Response:
    """Turn the passcode off; needs a current code or a recovery code."""
    principal = await require_principal(request)
    body = await parse_body(request, CodeBody)
    user_id = principal.user.id
    _require_enabled(principal.user.passcode_enabled)
    passcodes = request.app[ACCOUNTS].passcodes
    await _checked(request, user_id, lambda: passcodes.disable(user_id, body.code), "disabled")
    return web.Response(status=204)


@routes.post("/api/user/passcode/recovery-codes")
async def new_recovery_codes(request: web.Request) -> web.Response:
    """Replace the recovery codes (shown once); needs a current code."""
    principal = await require_principal(request)
    body = await parse_body(request, CodeBody)
    user_id = principal.user.id
    _require_enabled(principal.user.passcode_enabled)
    passcodes = request.app[ACCOUNTS].passcodes
    codes = await _checked(
        request, user_id, lambda: passcodes.regenerate(user_id, body.code), "recovery_codes"
    )
    return json_ok({"recovery_codes": codes})


async def _checked(
    request: web.Request, user_id: str, change: Callable[[], Awaitable[T]], event: str
) -> T:
    """A change that a passcode guards: counted against the passcode rate limit until
    the code proves right, then audited as `passcode.<event>`."""
    guard = request.app[GUARD]
    await guard.before_passcode(user_id)
    result = await change()
    await guard.passcode_succeeded(user_id)
    await audit.record(request.app[DB], f"passcode.{event}", user_id=user_id, ip=client_ip(request))
    return result
