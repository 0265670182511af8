"""Supervised AI execution end to end: a real hub, a real container, the AI's API token,
the person's signed-in calls and a browser-style terminal socket."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.approvals.conftest import Browser, exists, sh, token_for
from tests.containers.conftest import HubFactory
from tests.e2e.conftest import register_agent, start_agent
from tests.support import (
    Api,
    Hub,
    assert_error,
    create_postgres_database,
    database_backends,
    wait_for,
)


async def hold(ai: Api, box: str, cmd: Any, **extra: Any) -> str:
    code, body = await ai.call(
        "POST", f"/api/containers/{box}/exec", {"cmd": cmd, "supervised": True, **extra}
    )
    assert code == 202, (code, body)
    assert body["approval"]["status"] == "pending"
    assert body["approval"]["cmd"] == cmd
    assert body["approval"]["id"].startswith("apr_")
    return str(body["approval"]["id"])


def long_poll(ai: Api, approval_id: str, wait: int = 60) -> asyncio.Task[Any]:
    return asyncio.create_task(ai.ok("GET", f"/api/approvals/{approval_id}?wait={wait}"))


async def test_risky_waits_for_a_person_and_runs_visibly_when_approved(
    alice: Api, ai: Api, box: str, browser: Browser
) -> None:
    policy = await alice.ok("PUT", f"/api/containers/{box}/policy", {"mode": "approve_risky"})
    assert policy["mode"] == "approve_risky" and policy["paused"] is False
    assert (await ai.ok("GET", f"/api/containers/{box}/policy"))["mode"] == "approve_risky"

    # Nothing risky: it runs at once.
    code, listing = await ai.call(
        "POST", f"/api/containers/{box}/exec", {"cmd": "ls /", "supervised": True}
    )
    assert code == 200 and listing["exit_code"] == 0 and "etc" in listing["stdout"].split()

    await sh(ai, box, "mkdir -p /tmp/x && touch /tmp/x/f")
    approval_id = await hold(ai, box, "rm -rf /tmp/x && echo removed")
    await browser.statuses(approval_id, "pending")
    request = browser.approvals(approval_id)[0]
    assert request["cmd"] == "rm -rf /tmp/x && echo removed"
    assert request["session"] == browser.session_id
    assert "recursive" in request["reason"].lower()
    assert await exists(ai, box, "/tmp/x")  # held: not run

    listed = await ai.ok("GET", "/api/approvals?status=pending")
    assert [a["id"] for a in listed["approvals"]] == [approval_id]

    waiting = long_poll(ai, approval_id)
    await asyncio.sleep(0)
    decided = await alice.ok("POST", f"/api/approvals/{approval_id}/approve", {})
    assert decided["status"] in ("approved", "completed")
    done = await asyncio.wait_for(waiting, 60)
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["exit_code"] == 0
    assert result["stdout"] == "removed\n"
    assert result["timed_out"] is False
    assert result["session"] == browser.session_id
    assert not await exists(ai, box, "/tmp/x")

    # The people watching saw it typed and saw it finish.
    await browser.statuses(approval_id, "pending", "approved", "completed")
    assert browser.approvals(approval_id)[-1]["result"]["exit_code"] == 0
    assert b"rm -rf /tmp/x && echo removed" in browser.output
    assert b"removed\r\n" in browser.output

    # Its exit code comes back as well.
    failing = await hold(ai, box, "rm -rf /tmp/nothing; sh -c 'echo oops >&2; exit 3'")
    waiting = long_poll(ai, failing)
    await alice.ok("POST", f"/api/approvals/{failing}/approve", {})
    done = await asyncio.wait_for(waiting, 60)
    assert done["result"]["exit_code"] == 3
    assert done["result"]["stdout"] == "oops\n"

    # Deciding twice is a conflict, not a second run.
    code, body = await alice.call("POST", f"/api/approvals/{approval_id}/reject", {})
    assert_error(code, body, 409, "approval_decided")


async def test_rejected_returns_the_reason_and_never_runs(
    alice: Api, ai: Api, box: str, browser: Browser
) -> None:
    await sh(ai, box, "mkdir -p /tmp/x")
    approval_id = await hold(ai, box, "rm -rf /tmp/x")
    # Someone who joins the session afterwards is told of the waiting command too.
    url = alice.base.replace("http", "ws") + f"/ws/terminal/{box}"
    query = f"?token={alice.token}&session={browser.session_id}"
    async with alice.http.ws_connect(url + query) as ws:
        late = Browser(ws)
        late.task = asyncio.create_task(late.pump())
        await late.statuses(approval_id, "pending")
        late.task.cancel()
    waiting = long_poll(ai, approval_id)
    rejected = await alice.ok(
        "POST", f"/api/approvals/{approval_id}/reject", {"reason": "not on my box"}
    )
    assert rejected["status"] == "rejected" and rejected["reason"] == "not on my box"
    done = await asyncio.wait_for(waiting, 30)
    assert done["status"] == "rejected"
    assert done["reason"] == "not on my box"
    assert done["result"] is None
    await browser.statuses(approval_id, "pending", "rejected")
    code, body = await alice.call("POST", f"/api/approvals/{approval_id}/approve", {})
    assert_error(code, body, 409, "approval_decided")
    assert await exists(ai, box, "/tmp/x")


async def test_expired_never_runs(make_hub: HubFactory, http: Any) -> None:
    hub = await make_hub(approval_ttl="1", approval_sweep_interval="0.5")
    alice = await Api(http, hub.url).sign_up("alice@example.com")
    ai = await token_for(alice)
    box = (await alice.ok("POST", "/api/containers", {}, 201))["id"]
    await sh(ai, box, "mkdir -p /tmp/x")
    approval_id = await hold(ai, box, "rm -rf /tmp/x")
    done = await ai.ok("GET", f"/api/approvals/{approval_id}?wait=30")
    assert done["status"] == "expired", done
    assert done["result"] is None and "not run" in done["reason"]
    code, body = await alice.call("POST", f"/api/approvals/{approval_id}/approve", {})
    assert_error(code, body, 409, "approval_decided")
    assert await exists(ai, box, "/tmp/x")


async def test_an_edited_approval_runs_the_edit_and_the_audit_shows_both(
    alice: Api, ai: Api, box: str
) -> None:
    await sh(ai, box, "mkdir -p /tmp/x /tmp/other")
    approval_id = await hold(ai, box, "rm -rf /tmp/x")
    waiting = long_poll(ai, approval_id)
    edited = "rm -rf /tmp/other && echo edited"
    decided = await alice.ok("POST", f"/api/approvals/{approval_id}/approve", {"cmd": edited})
    assert decided["cmd"] == edited and decided["original_cmd"] == "rm -rf /tmp/x"
    done = await asyncio.wait_for(waiting, 60)
    # No live session on the box: it ran through exec.
    assert done["result"]["exit_code"] == 0 and done["result"]["stdout"] == "edited\n"
    assert await exists(ai, box, "/tmp/x")
    assert not await exists(ai, box, "/tmp/other")

    events = (await alice.ok("GET", "/api/audit"))["events"]
    by_action = {e["action"]: e for e in events if e["target"] == approval_id}
    assert by_action["approval.requested"]["detail"]["cmd"] == "rm -rf /tmp/x"
    approved = by_action["approval.approved"]["detail"]
    assert approved["cmd"] == edited and approved["original_cmd"] == "rm -rf /tmp/x"
    assert approved["by"].startswith("usr_")
    assert by_action["approval.requested"]["detail"]["by"].startswith("tok_")
    assert by_action["approval.completed"]["detail"]["exit_code"] == 0


async def test_pause_refuses_ai_commands_at_once(alice: Api, ai: Api, box: str) -> None:
    await alice.ok("PUT", f"/api/containers/{box}/policy", {"mode": "auto"})
    await sh(ai, box, "mkdir -p /tmp/x")
    await alice.ok("PUT", f"/api/containers/{box}/policy", {"mode": "approve_all"})
    waiting = await hold(ai, box, "ls /tmp")
    paused = await alice.ok("POST", f"/api/containers/{box}/policy/pause")
    assert paused["paused"] is True
    for body in ({"cmd": "ls", "supervised": True}, {"cmd": "ls"}):
        code, answer = await ai.call("POST", f"/api/containers/{box}/exec", body)
        assert_error(code, answer, 403, "ai_paused")
    # What was waiting is rejected; a person's own exec still runs.
    held = await ai.ok("GET", f"/api/approvals/{waiting}")
    assert held["status"] == "rejected" and "paused" in held["reason"]
    assert (await sh(alice, box, "echo mine"))["stdout"] == "mine\n"
    # The AI's token cannot lift the pause or loosen the policy.
    code, answer = await ai.call("POST", f"/api/containers/{box}/policy/resume")
    assert_error(code, answer, 403, "insufficient_scope")
    code, answer = await ai.call("PUT", f"/api/containers/{box}/policy", {"mode": "auto"})
    assert_error(code, answer, 403, "insufficient_scope")
    await alice.ok("POST", f"/api/containers/{box}/policy/resume")
    code, answer = await ai.call(
        "POST", f"/api/containers/{box}/exec", {"cmd": "ls /tmp", "supervised": True}
    )
    assert code == 202  # approve_all again holds it
    # Deny patterns win over everything.
    await alice.ok("PUT", f"/api/containers/{box}/policy", {"mode": "auto", "deny": [r"\bcurl\b"]})
    code, answer = await ai.call(
        "POST", f"/api/containers/{box}/exec", {"cmd": "curl example.com", "supervised": True}
    )
    assert_error(code, answer, 403, "command_denied")
    code, answer = await alice.call(
        "PUT", f"/api/containers/{box}/policy", {"mode": "auto", "deny": ["("]}
    )
    assert_error(code, answer, 400, "invalid_request")


async def test_others_cannot_see_or_decide_approvals(
    chub: Hub, alice: Api, ai: Api, box: str
) -> None:
    approval_id = await hold(ai, box, "rm -rf /tmp/x")
    bob = await Api(alice.http, chub.url).sign_up("bob@example.com")
    bob_ai = await token_for(bob)
    for who in (bob, bob_ai):
        code, body = await who.call("GET", f"/api/approvals/{approval_id}")
        assert_error(code, body, 404, "approval_not_found")
        code, body = await who.call("GET", f"/api/approvals/{approval_id}?wait=1")
        assert_error(code, body, 404, "approval_not_found")
        assert (await who.ok("GET", "/api/approvals"))["approvals"] == []
        code, body = await who.call("GET", f"/api/containers/{box}/policy")
        assert_error(code, body, 404)
    for path in ("approve", "reject"):
        code, body = await bob.call("POST", f"/api/approvals/{approval_id}/{path}", {})
        assert_error(code, body, 404, "approval_not_found")
    code, body = await bob.call("PUT", f"/api/containers/{box}/policy", {"mode": "auto"})
    assert_error(code, body, 404)
    code, body = await bob.call("POST", f"/api/containers/{box}/policy/pause")
    assert_error(code, body, 404)
    assert (await ai.ok("GET", f"/api/approvals/{approval_id}"))["status"] == "pending"
    for bad in ("?wait=x", "?wait=-1", "?wait=100000"):
        code, body = await ai.call("GET", f"/api/approvals/{approval_id}{bad}")
        assert_error(code, body, 400, "invalid_request")
    code, body = await ai.call("GET", "/api/approvals?status=maybe")
    assert_error(code, body, 400, "invalid_request")


async def test_the_recording_marks_requests_decisions_and_results(
    alice: Api, ai: Api, box: str, browser: Browser
) -> None:
    approval_id = await hold(ai, box, "rm -rf /tmp/x; echo gone")
    waiting = long_poll(ai, approval_id)
    await alice.ok("POST", f"/api/approvals/{approval_id}/approve", {})
    assert (await asyncio.wait_for(waiting, 60))["status"] == "completed"
    session_id = browser.session_id
    await alice.ok("DELETE", f"/api/sessions/{session_id}", status=204)

    async def ended() -> bool:
        return (await alice.ok("GET", f"/api/sessions/{session_id}"))["status"] == "ended"

    await wait_for(ended, 20, what="the session ended")
    async with alice.http.get(
        f"{alice.base}/api/sessions/{session_id}/recording", headers=alice.headers()
    ) as resp:
        assert resp.status == 200
        lines = (await resp.text()).splitlines()
    events = [json.loads(line) for line in lines[1:]]
    marks = [e[2] for e in events if e[1] == "m"]
    assert any(m.startswith(f"AI request {approval_id}") for m in marks), marks
    assert any(m.startswith(f"approved {approval_id}") for m in marks), marks
    assert any(m.startswith(f"AI result {approval_id}: exit 0") for m in marks), marks
    times = [e[0] for e in events]
    assert times == sorted(times)


@pytest.mark.parametrize("storage", database_backends())
async def test_racing_decisions_have_one_winner(
    make_hub: HubFactory, http: Any, tmp_path: Path, storage: str
) -> None:
    env: dict[str, str] = {}
    if storage == "postgres":
        env["database_url"] = await create_postgres_database(f"rexec_t_{secrets.token_hex(6)}")
    hub = await make_hub(tmp_path / storage, **env)
    alice = await Api(http, hub.url).sign_up("alice@example.com")
    ai = await token_for(alice)
    box = (await alice.ok("POST", "/api/containers", {}, 201))["id"]
    await sh(ai, box, "mkdir -p /tmp/x")
    for _ in range(3):
        approval_id = await hold(ai, box, "rm -rf /tmp/x")
        answers = await asyncio.gather(
            alice.call("POST", f"/api/approvals/{approval_id}/reject", {"reason": "r"}),
            alice.call("POST", f"/api/approvals/{approval_id}/approve", {"cmd": "true"}),
            alice.call("POST", f"/api/approvals/{approval_id}/reject", {"reason": "r"}),
        )
        assert sorted(code for code, _ in answers) == [200, 409, 409], answers
        final = await ai.ok("GET", f"/api/approvals/{approval_id}?wait=30")
        assert final["status"] in ("completed", "rejected")
        events = (await alice.ok("GET", "/api/audit"))["events"]
        decided = [
            e
            for e in events
            if e["target"] == approval_id
            and e["action"] in ("approval.approved", "approval.rejected")
        ]
        assert len(decided) == 1
    assert await exists(ai, box, "/tmp/x")  # only `true` or nothing ever ran


async def test_agents_are_supervised_too(chub: Hub, alice: Api, ai: Api, tmp_path: Path) -> None:
    config = tmp_path / "agent" / "agent.toml"
    agent_id = await register_agent(chub, alice, config)
    proc = await start_agent(alice, agent_id, config)
    try:
        policy = await alice.ok(
            "PUT", f"/api/agents/{agent_id}/policy", {"mode": "approve_all", "allow": ["^uname"]}
        )
        assert policy["target"] == agent_id and policy["allow"] == ["^uname"]
        code, ran = await ai.call(
            "POST", f"/api/agents/{agent_id}/exec", {"cmd": "uname -s", "supervised": True}
        )
        assert code == 200 and ran["stdout"] == "Linux\n"
        code, held = await ai.call(
            "POST", f"/api/agents/{agent_id}/exec", {"cmd": "echo on-agent", "supervised": True}
        )
        assert code == 202
        approval_id = held["approval"]["id"]
        waiting = long_poll(ai, approval_id)
        await alice.ok("POST", f"/api/approvals/{approval_id}/approve", {})
        done = await asyncio.wait_for(waiting, 60)
        assert done["result"]["stdout"] == "on-agent\n" and done["result"]["exit_code"] == 0

        # With a terminal open on the agent, it is typed there.
        url = chub.url.replace("http", "ws") + f"/ws/terminal/{agent_id}?token={alice.token}"
        async with alice.http.ws_connect(url) as ws:
            page = Browser(ws)
            page.task = asyncio.create_task(page.pump())
            await wait_for(lambda: page.messages, 15, what="the session message")
            # A shell starting up may discard what was typed before its prompt.
            await wait_for(lambda: page.output.rstrip().endswith((b"$", b"#")), 15, what="a prompt")
            code, held = await ai.call(
                "POST", f"/api/agents/{agent_id}/exec", {"cmd": "echo typed", "supervised": True}
            )
            approval_id = held["approval"]["id"]
            await page.statuses(approval_id, "pending")
            waiting = long_poll(ai, approval_id)
            await alice.ok("POST", f"/api/approvals/{approval_id}/approve", {})
            done = await asyncio.wait_for(waiting, 60)
            assert done["status"] == "completed", (done, bytes(page.output[-600:]))
            assert done["result"]["session"] == page.session_id
            assert done["result"]["stdout"] == "typed\n" and done["result"]["exit_code"] == 0
            page.task.cancel()
        await alice.ok("POST", f"/api/agents/{agent_id}/policy/pause")
        code, body = await ai.call("POST", f"/api/agents/{agent_id}/exec", {"cmd": "uname"})
        assert_error(code, body, 403, "ai_paused")
    finally:
        proc.kill()
