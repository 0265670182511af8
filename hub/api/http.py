"""The one place where errors become API.md's shape, plus body parsing and auth."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from common import jsonlimit
from common.errors import (
    ApiError,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)
from hub.db.models import User
from hub.relay import error_headers, offered_protocols
from hub.scopes import required_scope
from hub.state import ACCOUNTS, SETTINGS
from hub.tokens import Principal

log = logging.getLogger("rexec.hub.api")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Body(BaseModel):
    """Base of request bodies: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", str_max_length=65536)


def error_response(err: ApiError, request: web.Request | None = None) -> web.Response:
    headers = error_headers(request, err) if request is not None else {}
    if isinstance(err, RateLimited):
        headers["Retry-After"] = str(err.retry_after)
    return web.json_response(err.to_json(), status=err.status, headers=headers)


def _from_http(exc: web.HTTPException) -> ApiError:
    if exc.status == 404:
        return NotFound("No such endpoint.")
    if exc.status == 405:
        return MethodNotAllowed("This method is not allowed here.")
    if exc.status == 413:
        return PayloadTooLarge("The request body is too large.")
    err = ApiError(exc.reason or "Request failed.", code="http_error")
    err.status = exc.status  # type: ignore[misc]
    return err


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http(exc), request)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response(
            {"error": {"code": "internal_error", "message": "Something went wrong on the hub."}},
            status=500,
        )


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Read and validate a JSON body; every failure is a 400 naming the field."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("The request body is too large.") from None
    if not raw.strip():
        raw = b"{}"
    try:
        data = jsonlimit.loads(raw)
    except jsonlimit.TooDeep as exc:
        raise InvalidRequest(f"The body is {exc}.", details={"field": "body"}) from None
    except ValueError:  # also bad UTF-8
        raise InvalidRequest("The body is not valid JSON.", details={"field": "body"}) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.", details={"field": "body"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest(
            f"{field}: {first['msg']}",
            details={
                "field": field,
                "errors": [
                    {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                    for e in exc.errors()
                ],
            },
        ) from None


# WebSocket credentials out of the URL (URLs end up in logs and browser consoles): a
# browser cannot set Authorization on a WebSocket, but it can offer subprotocols, so a
# client offers `rexec` plus `rexec.bearer.<token>` (and `rexec.passcode.<base64url>`
# for a share's passcode); the hub answers `rexec`. docs/sessions.md, "Credentials".
WS_PROTOCOL = "rexec"


def protocol_credential(request: web.Request, kind: str) -> str | None:
    """The `rexec.<kind>.<value>` a WebSocket client offered, if any."""
    prefix = f"{WS_PROTOCOL}.{kind}."
    for offered in offered_protocols(request):
        if offered.startswith(prefix):
            return offered[len(prefix) :] or None
    return None


def bearer_token(request: web.Request, *, allow_query: bool = False) -> str | None:
    """The caller's token: the Authorization header; for a WebSocket (`allow_query`)
    also the offered `rexec.bearer.` subprotocol, then `?token=` (API.md's URL form)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    if allow_query:
        return protocol_credential(request, "bearer") or request.query.get("token") or None
    return None


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")


def client_ip(request: web.Request) -> str:
    """The caller's address; behind a trusted proxy, the last hop it saw."""
    remote = request.remote or "unknown"
    if remote in request.app[SETTINGS].trusted_proxies:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        if hops and hops[-1]:
            return hops[-1]
    return remote


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


async def require_principal(
    request: web.Request, *, allow_query: bool = False, scope: str | None = None
) -> Principal:
    """Who is calling, with which scopes; 403 `insufficient_scope` when the token lacks
    the one this endpoint needs (by default, from the table in hub/scopes.py)."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        token = bearer_token(request, allow_query=allow_query)
        if token is None:
            raise Unauthorized("Sign in first: send Authorization: Bearer <token>.")
        principal = await request.app[ACCOUNTS].principal(token, ip=client_ip(request))
        request[PRINCIPAL] = principal
    shared = bool(request.query.get("share"))
    needed = scope or required_scope(request.method, _route(request), via_share=shared)
    if not principal.allows(needed):
        raise Forbidden(
            f"This token does not have the {needed!r} scope this call needs.",
            code="insufficient_scope",
            details={"required": needed, "granted": sorted(principal.scopes)},
        )
    return principal


async def require_user(
    request: web.Request, *, allow_query: bool = False, scope: str | None = None
) -> User:
    """The calling user, once their token is found to hold the scope the call needs."""
    return (await require_principal(request, allow_query=allow_query, scope=scope)).user


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as API.md writes timestamps."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def json_ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)
