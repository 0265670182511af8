"""API tokens per API.md: shown once, stored hashed, scoped, expiring, revocable at once."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import aiohttp
from sqlalchemy import select, update

from hub.db.engine import Database
from hub.db.models import ApiToken, utcnow
from hub.scopes import ALL, EXEC, READ, allows, required_scope
from tests.support import Api, assert_error


def with_token(api: Api, token: str) -> Api:
    return Api(api.http, api.base, token)


async def test_create_list_use_revoke(api: Api, database_url: str) -> None:
    user = await api.sign_up("ann@x.io")
    made = await user.ok(
        "POST", "/api/user/tokens", {"name": "ci", "scopes": ["read"], "expires_in": 3600}, 201
    )
    assert set(made) == {"id", "token", "name", "scopes", "kind", "expires_at"}
    assert made["kind"] == "agent"  # the default: an AI or a script (docs/security.md)
    assert made["id"].startswith("tok_") and made["token"].startswith("rx_")
    assert made["scopes"] == ["read"] and made["expires_at"].endswith("Z")
    bot = with_token(api, made["token"])
    assert (await bot.ok("GET", "/api/user"))["email"] == "ann@x.io"
    listed = (await user.ok("GET", "/api/user/tokens"))["tokens"]
    assert [t["id"] for t in listed] == [made["id"]]
    assert "token" not in listed[0] and listed[0]["last_used_at"] is not None
    # Only a hash is kept.
    db = Database(database_url)
    try:
        async with db.session() as s:
            row = await s.scalar(select(ApiToken).where(ApiToken.id == made["id"]))
        assert row is not None
        assert row.token_hash == hashlib.sha256(made["token"].encode()).hexdigest()
    finally:
        await db.close()
    status, _ = await user.call("DELETE", f"/api/user/tokens/{made['id']}")
    assert status == 204
    status, body = await bot.call("GET", "/api/user")  # refused at once
    assert_error(status, body, 401, "invalid_token")
    assert (await user.ok("GET", "/api/user/tokens"))["tokens"] == []
    status, body = await user.call("DELETE", f"/api/user/tokens/{made['id']}")
    assert_error(status, body, 404, "token_not_found")


async def test_read_only_token_cannot_create_exec_or_delete(api: Api) -> None:
    user = await api.sign_up("ro@x.io")
    token = (await user.ok("POST", "/api/user/tokens", {"name": "ro", "scopes": ["read"]}, 201))[
        "token"
    ]
    bot = with_token(api, token)
    assert (await bot.ok("GET", "/api/containers"))["containers"] == []
    assert (await bot.ok("GET", "/api/agents"))["agents"] == []
    for method, path in (
        ("POST", "/api/containers"),
        ("POST", "/api/containers/ctr_x/exec"),
        ("DELETE", "/api/containers/ctr_x"),
        ("POST", "/api/agents/tokens"),
        ("POST", "/api/agents/agt_x/exec"),
        ("DELETE", "/api/agents/agt_x"),
        ("POST", "/api/user/tokens"),
        ("POST", "/api/user/passcode"),
        ("POST", "/api/billing/subscribe"),
    ):
        status, body = await bot.call(method, path, {"cmd": "true", "name": "x", "plan": "pro"})
        assert_error(status, body, 403, "insufficient_scope")
        assert body["error"]["details"]["granted"] == ["read"]
    # A terminal is exec too, refused before the upgrade.
    async with api.http.get(f"{api.base}/ws/terminal/ctr_x?token={token}") as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "insufficient_scope"


async def test_scoped_tokens_reach_their_endpoints(api: Api) -> None:
    user = await api.sign_up("sc@x.io")
    default = await user.ok("POST", "/api/user/tokens", {"name": "bot"}, 201)
    assert default["scopes"] == ["agents", "containers", "exec", "read"]
    assert default["expires_at"] is None
    agents_only = await user.ok(
        "POST", "/api/user/tokens", {"name": "a", "scopes": ["agents"]}, 201
    )
    bot = with_token(api, agents_only["token"])
    made = await bot.ok("POST", "/api/agents/tokens", {}, 201)
    assert made["token"].startswith("rxa_")
    status, body = await bot.call("POST", "/api/containers/ctr_x/exec", {"cmd": "true"})
    assert_error(status, body, 403, "insufficient_scope")
    # Newest first.
    listed = [t["id"] for t in (await user.ok("GET", "/api/user/tokens"))["tokens"]]
    assert listed == [agents_only["id"], default["id"]]


async def test_expired_token_is_refused(api: Api, database_url: str) -> None:
    user = await api.sign_up("ex@x.io")
    made = await user.ok("POST", "/api/user/tokens", {"name": "old", "expires_in": 60}, 201)
    db = Database(database_url)
    try:
        async with db.session() as s:
            await s.execute(
                update(ApiToken)
                .where(ApiToken.id == made["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await s.commit()
    finally:
        await db.close()
    status, body = await with_token(api, made["token"]).call("GET", "/api/user")
    assert_error(status, body, 401, "token_expired")


async def test_bad_token_requests(api: Api) -> None:
    user = await api.sign_up("bad@x.io")
    for body, field in (
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": ""}, "name"),
        ({"name": "x", "expires_in": 5}, "expires_in"),
    ):
        status, answer = await user.call("POST", "/api/user/tokens", body)
        assert_error(status, answer, 400, "invalid_request")
        assert answer["error"]["details"]["field"] == field
    status, answer = await with_token(api, "rx_nope").call("GET", "/api/user")
    assert_error(status, answer, 401, "invalid_token")
    other = await api.sign_up("other@x.io")
    mine = await user.ok("POST", "/api/user/tokens", {"name": "m"}, 201)
    status, answer = await other.call("DELETE", f"/api/user/tokens/{mine['id']}")
    assert_error(status, answer, 404, "token_not_found")


def test_scope_table() -> None:
    assert required_scope("GET", "/api/containers") == READ
    assert required_scope("GET", "/ws/terminal/{id}") == EXEC
    assert required_scope("POST", "/api/containers/{id}/exec") == EXEC
    assert required_scope("PUT", "/api/containers/{id}/policy") == ALL
    assert required_scope("POST", "/api/approvals/{id}/approve") == ALL
    assert required_scope("POST", "/api/something/new") == ALL
    assert allows({"exec"}, READ) and not allows({"read"}, EXEC) and allows({ALL}, EXEC)
    assert not allows(set(), READ)


async def test_token_works_on_websocket_query(api: Api, http: aiohttp.ClientSession) -> None:
    user = await api.sign_up("ws@x.io")
    token = (await user.ok("POST", "/api/user/tokens", {"name": "t"}, 201))["token"]
    async with http.get(f"{api.base}/ws/terminal/ctr_nothing?token={token}") as resp:
        # Past authentication and scope: the target is what is missing.
        assert resp.status in (404, 503), await resp.text()


def test_a_share_link_only_lowers_the_terminal_join() -> None:
    assert required_scope("GET", "/ws/terminal/{id}", via_share=True) == READ
    assert required_scope("POST", "/api/containers", via_share=True) == "containers"
    assert required_scope("DELETE", "/api/sessions/{id}", via_share=True) == EXEC
