"""`GET /api/audit`: the user's own events, newest first, with no secrets in them."""

from __future__ import annotations

import json
import time

from hub.passcodes import totp
from tests.support import Api, assert_error

PASSWORD = "correct horse 1"


async def test_audit_records_sign_ins_tokens_and_passcodes(api: Api) -> None:
    user = await api.sign_up("ann@x.io", PASSWORD)
    status, _ = await api.call("POST", "/api/login", {"email": "ann@x.io", "password": "wrong!!"})
    assert status == 401
    made = await user.ok("POST", "/api/user/tokens", {"name": "ci", "scopes": ["read"]}, 201)
    bot = Api(api.http, api.base, made["token"])
    await bot.ok("GET", "/api/user")
    await user.call("DELETE", f"/api/user/tokens/{made['id']}")
    secret = (await user.ok("POST", "/api/user/passcode", {}))["secret"]
    await user.ok("POST", "/api/user/passcode", {"code": totp(secret)})
    await api.ok(
        "POST",
        "/api/login",
        {"email": "ann@x.io", "password": PASSWORD, "passcode": totp(secret, time.time() + 30)},
    )
    events = (await user.ok("GET", "/api/audit"))["events"]
    actions = [e["action"] for e in events]
    assert actions == [
        "login.succeeded",
        "passcode.enabled",
        "token.revoked",
        "token.used",
        "token.created",
        "login.failed",
        "login.succeeded",
    ]
    assert events[0]["detail"] == {"method": "password+totp"}
    assert events[-2]["detail"] == {"reason": "invalid_credentials"}
    assert all(e["id"].startswith("evt_") and e["created_at"].endswith("Z") for e in events)
    assert events[0]["ip"] == "127.0.0.1"
    assert {e["target"] for e in events[2:5]} == {made["id"]}
    dump = json.dumps(events)
    assert made["token"] not in dump and PASSWORD not in dump and secret not in dump
    # Paging and limits.
    assert len((await user.ok("GET", "/api/audit?limit=2"))["events"]) == 2
    older = await user.ok("GET", f"/api/audit?before={events[1]['created_at']}")
    assert all(e["created_at"] <= events[1]["created_at"] for e in older["events"])
    for query, field in (("limit=0", "limit"), ("limit=x", "limit"), ("before=soon", "before")):
        status, body = await user.call("GET", f"/api/audit?{query}")
        assert_error(status, body, 400, "invalid_request")
        assert body["error"]["details"]["field"] == field


async def test_users_see_only_their_own_events(api: Api) -> None:
    ann = await api.sign_up("ann@x.io")
    bob = await api.sign_up("bob@x.io")
    await ann.ok("POST", "/api/user/tokens", {"name": "a"}, 201)
    bob_events = (await bob.ok("GET", "/api/audit"))["events"]
    assert [e["action"] for e in bob_events] == ["login.succeeded"]
    status, body = await Api(api.http, api.base).call("GET", "/api/audit")
    assert_error(status, body, 401)


async def test_agent_lifecycle_is_audited(api: Api) -> None:
    from common.agentauth import generate_key, public_openssh

    user = await api.sign_up("ag@x.io")
    token = (await user.ok("POST", "/api/agents/tokens", {"name": "box"}, 201))["token"]
    agent = await api.ok(
        "POST",
        "/api/agents/register",
        {"token": token, "name": "box", "public_key": public_openssh(generate_key())},
        201,
    )
    await user.call("DELETE", f"/api/agents/{agent['id']}")
    actions = [e["action"] for e in (await user.ok("GET", "/api/audit"))["events"]]
    assert actions[:3] == ["agent.deleted", "agent.registered", "agent.token_created"]
