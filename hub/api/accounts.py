"""Accounts endpoints: register, login, refresh, logout, user."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from common.errors import InvalidRequest
from hub import commands
from hub.accounts import EmailTaken, TokenPair, TokenReused
from hub.api.http import Body, bearer_token, client_ip, iso, json_ok, parse_body, require_user
from hub.api.web import check_origin
from hub.db.models import User
from hub.state import ACCOUNTS, GUARD, SETTINGS

routes = web.RouteTableDef()
# The web app's refresh token: out of reach of scripts (HttpOnly), sent only to the
# hub's own API (Path=/api) and never on cross-site requests (SameSite=Strict).
REFRESH_COOKIE = "rexec_refresh"
COOKIE_PATH = "/api"


class RegisterBody(Body):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=1024)
    name: str | None = Field(None, max_length=200)


class LoginBody(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    passcode: str | None = Field(None, max_length=32)


class RefreshBody(Body):
    refresh_token: str | None = Field(None, max_length=512)


class LogoutBody(Body):
    refresh_token: str | None = Field(None, max_length=512)
    everywhere: bool = False  # every sign-in of the user, not only this one
    revoke_tokens: bool = False  # with `everywhere`: the user's API tokens too


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "plan": user.plan,
        "created_at": iso(user.created_at),
        "passcode_enabled": user.passcode_enabled,
    }


def _secure(request: web.Request) -> bool:
    public = request.app[SETTINGS].public_url or ""
    return request.secure or public.startswith("https://")


def with_refresh_cookie(request: web.Request, pair: TokenPair) -> web.Response:
    """The token pair as API.md's JSON, plus the refresh token as the browser's cookie."""
    response = json_ok(tokens_json(pair))
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=request.app[SETTINGS].refresh_token_ttl,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )
    return response


def tokens_json(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "user": user_json(pair.user),
    }


@routes.post("/api/register")
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterBody)
    await request.app[GUARD].register(client_ip(request), body.email)
    try:
        user = await request.app[ACCOUNTS].register(body.email, body.password, body.name)
    except EmailTaken as taken:  # the same answer as a new account: no existence signal
        user = taken.stand_in
    return json_ok({"user": user_json(user)}, status=201)


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    ip, guard = client_ip(request), request.app[GUARD]
    # Counted before the password is checked, so that the 11th guess in a minute learns
    # nothing, even when many arrive at once; given back if the sign-in succeeds.
    await guard.before_login(ip, body.email)
    pair = await request.app[ACCOUNTS].login(body.email, body.password, body.passcode, ip=ip)
    await guard.login_succeeded(ip, body.email)
    return with_refresh_cookie(request, pair)


@routes.post("/api/refresh")
async def refresh(request: web.Request) -> web.Response:
    check_origin(request, "refresh a sign-in")  # the cookie rides on cross-site requests
    body = await parse_body(request, RefreshBody)
    token = body.refresh_token or request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise InvalidRequest("refresh_token is required.", details={"field": "refresh_token"})
    ip = client_ip(request)
    await request.app[GUARD].refresh(ip)
    try:
        pair = await request.app[ACCOUNTS].refresh(token, ip=ip)
    except TokenReused as reused:  # a stolen token in play: that sign-in ends everywhere
        await signed_out(request.app, reused.user_id, reused.family)
        raise
    return with_refresh_cookie(request, pair)


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    check_origin(request, "sign out")
    body = await parse_body(request, LogoutBody)
    token = body.refresh_token or request.cookies.get(REFRESH_COOKIE)
    user_id = None
    if not token and bearer_token(request):
        user_id = (await require_user(request)).id
    user_id, family = await request.app[ACCOUNTS].logout(
        token,
        user_id,
        everywhere=body.everywhere,
        revoke_tokens=body.revoke_tokens,
        ip=client_ip(request),
    )
    if user_id is not None:
        await signed_out(request.app, user_id, family, tokens=family is None and body.revoke_tokens)
    response = web.Response(status=204)
    response.del_cookie(REFRESH_COOKIE, path=COOKIE_PATH)
    return response


async def signed_out(
    app: web.Application, user_id: str, family: str | None, *, tokens: bool = False
) -> None:
    """The one way a sign-in ends (sign-out, a reused refresh token): the live terminals
    opened with it close (4401) on every hub. `family` None: every sign-in of the user,
    and their SSH connections; `tokens`: the sockets of their API tokens too."""
    await commands.kick(app, 4401, "Signed out.", user=user_id, tag="family", value=family)
    if family is None:
        await commands.kick(app, 4401, "Signed out.", user=user_id, tag="ssh_key")
    if tokens:
        await commands.kick(app, 4401, "Signed out.", user=user_id, tag="token")


@routes.get("/api/user")
async def get_user(request: web.Request) -> web.Response:
    return json_ok(user_json(await require_user(request)))
