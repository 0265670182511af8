"""Plan limits and metering on the real Docker engine, with real hub processes: the
count and size of containers, an upgrade by webhook, and usage that is exact across a
`kill -9` of the hub."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import docker

from tests.billing.stripe_fake import WEBHOOK_SECRET, checkout_completed, payload_of, sign
from tests.containers.conftest import HubFactory
from tests.support import Api, assert_error, wait_for

PLANS = json.dumps(
    {
        "free": {"name": "Free", "containers": 1, "container_cpus": 0.5},
        "pro": {"name": "Pro", "price_cents": 1500, "containers": 2},
    }
)


async def test_free_container_beyond_the_plan_then_upgrade(make_hub: HubFactory, http: Any) -> None:
    hub = await make_hub(plans=PLANS, stripe_webhook_secret=WEBHOOK_SECRET, warm_pool_size="0")
    api = await Api(http, hub.url).sign_up("free@example.com")
    uid = (await api.ok("GET", "/api/user"))["id"]
    first = await api.ok("POST", "/api/containers", {}, 201)
    assert first["limits"]["cpus"] == 0.5  # the hub's default, lowered to the plan's
    status, body = await api.call("POST", "/api/containers", {})
    assert_error(status, body, 402, "plan_limit_reached")
    assert body["error"]["details"] == {"limit": "containers", "plan": "free", "max": 1}
    payload = payload_of(checkout_completed(uid, "pro", "sub_up", "cus_up"))
    async with http.post(
        f"{hub.url}/api/billing/webhook",
        data=payload,
        headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200
    await api.ok("POST", "/api/containers", {}, 201)
    usage = await api.ok("GET", "/api/billing/usage")
    assert usage["plan"] == "pro" and usage["usage"]["containers_running"] == 2


async def test_container_size_beyond_the_plan(make_hub: HubFactory, http: Any) -> None:
    hub = await make_hub(plans=PLANS, warm_pool_size="0")
    api = await Api(http, hub.url).sign_up("size@example.com")
    status, body = await api.call("POST", "/api/containers", {"cpus": 1.0})
    assert_error(status, body, 402, "plan_limit_reached")
    assert body["error"]["details"]["limit"] == "container_cpus"
    # Past the hub's own maximum is still a 400 naming the field.
    status, body = await api.call("POST", "/api/containers", {"cpus": 64})
    assert_error(status, body, 400, "invalid_request")


async def test_usage_is_exact_across_a_hub_kill(
    make_hub: HubFactory, http: Any, engine: docker.DockerClient, tmp_path: Path
) -> None:
    env = {"warm_pool_size": "0", "usage_heartbeat_interval": "1"}
    hub = await make_hub(tmp_path / "h", **env)
    api = await Api(http, hub.url).sign_up("meter@example.com")
    keep = (await api.ok("POST", "/api/containers", {}, 201))["id"]
    keep_started = time.time()
    lost = (await api.ok("POST", "/api/containers", {}, 201))["id"]
    lost_started = time.time()
    lost_docker = (await api.ok("POST", f"/api/containers/{lost}/exec", {"cmd": "hostname"}))[
        "stdout"
    ].strip()
    # Time passing is what this test measures: the pauses are the point.
    await asyncio.sleep(2)
    hub.kill()  # SIGKILL: no chance to write anything down
    # Longer than the tolerance: counting only to the last heartbeat would fail.
    await asyncio.sleep(3)
    engine.containers.get(lost_docker).remove(force=True)  # ends while the hub is down
    lost_ended = time.time()
    await asyncio.sleep(2)
    restarted = await make_hub(tmp_path / "h", port=hub.port, **env)
    api = Api(http, restarted.url, api.token)
    await asyncio.sleep(1)
    status, _ = await api.call("DELETE", f"/api/containers/{keep}")
    assert status == 204
    keep_ended = time.time()
    used = (await api.ok("GET", "/api/billing/usage"))["usage"]
    really = (keep_ended - keep_started) + (lost_ended - lost_started)
    assert abs(used["container_seconds"] - really) <= 2, (used, really)
    assert used["containers_running"] == 0
    # And it stays put once nothing runs.
    again = (await api.ok("GET", "/api/billing/usage"))["usage"]["container_seconds"]
    assert again == used["container_seconds"]


async def test_terminal_sessions_are_metered(make_hub: HubFactory, http: Any) -> None:
    from tests.containers.test_containers import terminal

    hub = await make_hub(warm_pool_size="0")
    api = await Api(http, hub.url).sign_up("sessions@example.com")
    cid = (await api.ok("POST", "/api/containers", {}, 201))["id"]
    started = time.time()
    _, texts = await terminal(hub, api, cid, b"sleep 1.5; exit\n")
    took = time.time() - started
    assert texts[-1]["type"] == "exit"

    async def metered() -> Any:
        used = (await api.ok("GET", "/api/billing/usage"))["usage"]
        return used if used["session_seconds"] >= 1 else None

    used = await wait_for(metered, 10, what="the session's seconds")
    assert used["session_seconds"] <= took + 1
    events = [e["action"] for e in (await api.ok("GET", "/api/audit"))["events"]]
    assert "container.created" in events
