"""Accounts per API.md, on SQLite and PostgreSQL: tokens, rotation, and error shapes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import jwt
import pytest

from hub.app import jwt_secret
from hub.security import hash_password, verify_password
from hub.settings import HubSettings
from tests.support import Api, assert_error

PASSWORD = "correct horse 1"


async def test_register_login_user(api: Api) -> None:
    created = await api.ok(
        "POST",
        "/api/register",
        {"email": "Ann@Example.com", "password": PASSWORD, "name": "Ann"},
        201,
    )
    user = created["user"]
    assert user["id"].startswith("usr_") and user["email"] == "ann@example.com"
    tokens = await api.ok("POST", "/api/login", {"email": "ann@example.com", "password": PASSWORD})
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    assert tokens["user"]["id"] == user["id"]
    me = await Api(api.http, api.base, tokens["access_token"]).ok("GET", "/api/user")
    assert set(me) == {"id", "email", "name", "plan", "created_at", "passcode_enabled"}
    assert me["created_at"].endswith("Z") and me["plan"] == "free"


async def test_registering_a_taken_email_reveals_nothing(api: Api) -> None:
    first = await api.ok("POST", "/api/register", {"email": "a@x.io", "password": PASSWORD}, 201)
    # The same answer as a new account (so nobody learns the email has one)...
    again = await api.ok(
        "POST", "/api/register", {"email": "A@x.io", "password": "another one 2", "name": "M"}, 201
    )
    fresh = await api.ok("POST", "/api/register", {"email": "b@x.io", "password": PASSWORD}, 201)
    assert set(again) == set(fresh) == {"user"}
    assert set(again["user"]) == set(fresh["user"])
    assert again["user"]["id"] != first["user"]["id"] and again["user"]["id"].startswith("usr_")
    assert again["user"]["created_at"].endswith("Z") and again["user"]["plan"] == "free"
    assert again["user"]["email"] == "a@x.io" and again["user"]["name"] == "M"
    # ...but the account is untouched: its password still works, the new one does not.
    await api.ok("POST", "/api/login", {"email": "a@x.io", "password": PASSWORD})
    status, body = await api.call(
        "POST", "/api/login", {"email": "a@x.io", "password": "another one 2"}
    )
    assert_error(status, body, 401, "invalid_credentials")


async def test_wrong_password_and_unknown_user(api: Api) -> None:
    await api.ok("POST", "/api/register", {"email": "a@x.io", "password": PASSWORD}, 201)
    for email, password in (("a@x.io", "wrong password"), ("nobody@x.io", PASSWORD)):
        status, body = await api.call("POST", "/api/login", {"email": email, "password": password})
        assert_error(status, body, 401, "invalid_credentials")


async def test_refresh_rotates_and_reuse_revokes_family(api: Api) -> None:
    await api.ok("POST", "/api/register", {"email": "a@x.io", "password": PASSWORD}, 201)
    first = await api.ok("POST", "/api/login", {"email": "a@x.io", "password": PASSWORD})
    second = await api.ok("POST", "/api/refresh", {"refresh_token": first["refresh_token"]})
    assert second["refresh_token"] != first["refresh_token"]
    # The old one is spent: presenting it again revokes the whole family...
    status, body = await api.call("POST", "/api/refresh", {"refresh_token": first["refresh_token"]})
    assert_error(status, body, 401, "token_reused")
    # ...including the newest token, which was never used.
    status, body = await api.call(
        "POST", "/api/refresh", {"refresh_token": second["refresh_token"]}
    )
    assert_error(status, body, 401)
    # Another login starts a new family that works.
    third = await api.ok("POST", "/api/login", {"email": "a@x.io", "password": PASSWORD})
    await api.ok("POST", "/api/refresh", {"refresh_token": third["refresh_token"]})


async def test_logout_revokes_family(api: Api) -> None:
    await api.ok("POST", "/api/register", {"email": "a@x.io", "password": PASSWORD}, 201)
    tokens = await api.ok("POST", "/api/login", {"email": "a@x.io", "password": PASSWORD})
    status, _ = await api.call("POST", "/api/logout", {"refresh_token": tokens["refresh_token"]})
    assert status == 204
    status, body = await api.call(
        "POST", "/api/refresh", {"refresh_token": tokens["refresh_token"]}
    )
    assert_error(status, body, 401)


async def test_bad_tokens(api: Api, settings: HubSettings) -> None:
    user_api = await api.sign_up("a@x.io")
    assert user_api.token
    secret = jwt_secret(settings)  # configured, or generated into data_dir
    claims = jwt.decode(user_api.token, secret, algorithms=["HS256"], audience="rexec-api")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, secret, algorithm="HS256")
    forged = jwt.encode(claims, "not-the-secret-but-long-enough-for-hs256", algorithm="HS256")
    head, body_part, sig = user_api.token.split(".")
    tampered = f"{head}.{body_part}.{sig[:-4]}AAAA"
    for token, code in (
        (expired, "token_expired"),
        (forged, "invalid_token"),
        (tampered, "invalid_token"),
        ("garbage", "invalid_token"),
    ):
        status, body = await Api(api.http, api.base, token).call("GET", "/api/user")
        assert_error(status, body, 401, code)
    status, body = await Api(api.http, api.base).call("GET", "/api/user")
    assert_error(status, body, 401)
    status, body = await api.call("POST", "/api/refresh", {"refresh_token": "rrt_nope"})
    assert_error(status, body, 401, "invalid_token")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"email": "a@x.io"}', "password"),
        (b'{"email": "a@x.io", "password": "short"}', "password"),
        (b'{"email": "not-an-email", "password": "long enough 1"}', "email"),
        (b'{"email": "a@x.io", "password": "long enough 1", "admin": true}', "admin"),
        (b'{"email": 5, "password": "long enough 1"}', "email"),
    ],
)
async def test_bad_bodies_name_the_field(api: Api, raw: bytes, field: str) -> None:
    status, body = await api.call("POST", "/api/register", raw=raw)
    assert_error(status, body, 400, "invalid_request")
    assert body["error"]["details"]["field"] == field


async def test_oversized_body_unknown_route_wrong_method(api: Api) -> None:
    status, body = await api.call(
        "POST", "/api/login", raw=b'{"email": "' + b"a" * (2 << 20) + b'"}'
    )
    assert_error(status, body, 413)
    status, body = await api.call("GET", "/api/no-such-thing")
    assert_error(status, body, 404)
    status, body = await api.call("DELETE", "/api/login")
    assert_error(status, body, 405)


async def test_registration_can_be_turned_off(
    api: Api, settings: HubSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "registration_enabled", False)
    status, body = await api.call(
        "POST", "/api/register", {"email": "a@x.io", "password": PASSWORD}
    )
    assert_error(status, body, 403, "registration_closed")


@pytest.mark.backend_independent
async def test_argon2_runs_off_the_event_loop() -> None:
    """While a password is hashed or checked (tens of ms of CPU: sign-in, share
    passcodes), the loop goes on serving: it turns many times before the answer."""

    async def turns_while(work: Awaitable[object]) -> int:
        task = asyncio.ensure_future(work)
        turns = 0
        while not task.done():
            await asyncio.sleep(0)
            turns += 1
        task.result()
        return turns

    hashed = await hash_password("correct horse 1")
    assert await turns_while(hash_password("another one 2")) > 5
    assert await turns_while(verify_password(hashed, "wrong guess")) > 5
    assert await verify_password(hashed, "correct horse 1")
    assert not await verify_password(None, "correct horse 1")
