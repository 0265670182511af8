"""Credential kinds on the API (an in-process hub): tokens and keys are agents' unless
made as a person's; an agent's credential cannot make a person's, decide approvals,
loosen or resume a policy, whatever its scopes."""

from __future__ import annotations

import asyncssh

from tests.support import Api, assert_error


def public_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


async def test_tokens_and_keys_carry_a_kind(api: Api) -> None:
    alice = await api.sign_up("alice@example.com")
    default = await alice.ok("POST", "/api/user/tokens", {"name": "ai"}, 201)
    assert default["kind"] == "agent"
    person = await alice.ok("POST", "/api/user/tokens", {"name": "me", "kind": "person"}, 201)
    assert person["kind"] == "person"
    listed = {t["id"]: t["kind"] for t in (await alice.ok("GET", "/api/user/tokens"))["tokens"]}
    assert listed == {default["id"]: "agent", person["id"]: "person"}
    assert (await alice.ok("GET", f"/api/user/tokens/{person['id']}"))["kind"] == "person"
    code, body = await alice.call("POST", "/api/user/tokens", {"name": "x", "kind": "robot"})
    assert_error(code, body, 400, "invalid_request")
    assert body["error"]["details"]["field"] == "kind"

    key = await alice.ok("POST", "/api/user/keys", {"name": "k", "public_key": public_key()}, 201)
    assert key["kind"] == "agent"
    mine = {"name": "m", "public_key": public_key(), "kind": "person"}
    assert (await alice.ok("POST", "/api/user/keys", mine, 201))["kind"] == "person"
    kinds = sorted(k["kind"] for k in (await alice.ok("GET", "/api/user/keys"))["keys"])
    assert kinds == ["agent", "person"]


async def test_an_agents_credential_cannot_leave_supervision(api: Api) -> None:
    alice = await api.sign_up("alice@example.com")
    made = await alice.ok("POST", "/api/user/tokens", {"name": "ai", "scopes": ["all"]}, 201)
    ai = Api(alice.http, alice.base, made["token"])  # every scope, but an agent's
    for body in ({"name": "p", "kind": "person"},):
        code, answer = await ai.call("POST", "/api/user/tokens", body)
        assert_error(code, answer, 403, "person_required")
    assert (await ai.ok("POST", "/api/user/tokens", {"name": "a"}, 201))["kind"] == "agent"
    key = {"name": "k", "public_key": public_key(), "kind": "person"}
    code, answer = await ai.call("POST", "/api/user/keys", key)
    assert_error(code, answer, 403, "person_required")
    for method, path, body in (
        ("POST", "/api/approvals/apr_x/approve", {}),
        ("POST", "/api/approvals/apr_x/reject", {}),
        ("PUT", "/api/containers/ctr_x/policy", {"mode": "auto"}),
        ("POST", "/api/containers/ctr_x/policy/resume", None),
        ("PUT", "/api/agents/agt_x/policy", {"mode": "auto"}),
        ("POST", "/api/agents/agt_x/policy/resume", None),
    ):
        code, answer = await ai.call(method, path, body)
        assert_error(code, answer, 403, "person_required")
    # Pausing only tightens: it is allowed (here the target is unknown: 404).
    code, answer = await ai.call("POST", "/api/agents/agt_x/policy/pause")
    assert_error(code, answer, 404)
    # A person's token with `all` may do what a sign-in may.
    made = await alice.ok(
        "POST", "/api/user/tokens", {"name": "me", "scopes": ["all"], "kind": "person"}, 201
    )
    me = Api(alice.http, alice.base, made["token"])
    assert (await me.ok("POST", "/api/user/tokens", {"name": "p", "kind": "person"}, 201))[
        "kind"
    ] == "person"
    code, answer = await me.call("POST", "/api/approvals/apr_x/approve", {})
    assert_error(code, answer, 404, "approval_not_found")
