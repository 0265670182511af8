"""Plans per API.md, usage's shape, subscribing without payments, the admin command,
and plan limits at the entry points that need no Docker (agents, terminal minutes)."""

from __future__ import annotations

import asyncio
import os

from common.agentauth import generate_key, public_openssh
from hub.billing.plans import PlanSpec
from hub.settings import HubSettings
from tests.accounts.conftest import MakeApi
from tests.support import BIN, Api, assert_error

API_LIMITS = {"containers", "agents", "session_minutes_per_month", "recording_retention_days"}


async def test_plans_exactly_per_api_md(api: Api) -> None:
    plans = (await api.ok("GET", "/api/billing/plans"))["plans"]
    assert [p["id"] for p in plans] == ["free", "pro", "enterprise"]
    for plan in plans:
        assert set(plan) == {"id", "name", "price_cents", "interval", "limits"}
        assert set(plan["limits"]) >= API_LIMITS
        assert plan["interval"] == "month" and isinstance(plan["price_cents"], int)
    assert plans[0]["price_cents"] == 0 and plans[1]["price_cents"] > 0
    assert plans[0]["limits"]["containers"] == 3


async def test_usage_shape(api: Api) -> None:
    user = await api.sign_up("u@x.io")
    answer = await user.ok("GET", "/api/billing/usage")
    assert set(answer) == {"plan", "period_start", "period_end", "usage", "limits"}
    assert answer["plan"] == "free"
    assert answer["period_start"].endswith("-01T00:00:00Z")
    assert answer["period_end"].endswith("-01T00:00:00Z")
    assert answer["usage"] == {
        "container_seconds": 0,
        "session_seconds": 0,
        "recording_bytes": 0,
        "containers_running": 0,
        "agents": 0,
    }
    assert set(answer["limits"]) >= API_LIMITS


async def test_subscribe_without_stripe(api: Api) -> None:
    user = await api.sign_up("s@x.io")
    answer = await user.ok("POST", "/api/billing/subscribe", {"plan": "free"})
    assert answer == {"subscription": {"plan": "free", "status": "active"}}
    status, body = await user.call("POST", "/api/billing/subscribe", {"plan": "pro"})
    assert_error(status, body, 422, "payments_not_configured")
    assert "rexec-hub user plan" in body["error"]["message"]
    status, body = await user.call("POST", "/api/billing/subscribe", {"plan": "gold"})
    assert_error(status, body, 400, "invalid_request")
    assert body["error"]["details"]["field"] == "plan"
    status, body = await api.call("POST", "/api/billing/webhook", {"type": "x"})
    assert_error(status, body, 400, "payments_not_configured")


async def rexec_hub(*argv: str, database_url: str) -> tuple[int, str, str]:
    """The admin command as a process; the hub in this test's loop keeps running."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "rexec-hub"),
        *argv,
        env={**os.environ, "REXEC_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_admin_command_sets_a_plan(
    api: Api, settings: HubSettings, database_url: str
) -> None:
    user = await api.sign_up("admin-set@x.io")
    argv = ("user", "plan", "--email", "Admin-Set@x.io", "--data-dir", str(settings.data_dir))
    code, out, err = await rexec_hub(*argv, "--plan", "pro", database_url=database_url)
    assert code == 0, err
    assert "pro" in out
    assert (await user.ok("GET", "/api/user"))["plan"] == "pro"
    assert (await user.ok("GET", "/api/billing/usage"))["limits"]["containers"] == 10
    events = (await user.ok("GET", "/api/audit"))["events"]
    assert events[0]["action"] == "plan.changed"
    assert events[0]["detail"] == {"from": "free", "to": "pro", "by": "admin"}
    code, _, err = await rexec_hub(*argv, "--plan", "gold", database_url=database_url)
    assert code != 0 and "gold" in err


async def test_agents_beyond_the_plan_get_402(make_api: MakeApi) -> None:
    plans = {"free": PlanSpec(name="Free", agents=1), "pro": PlanSpec(name="Pro", agents=5)}
    api = await make_api(plans=plans)
    user = await api.sign_up("ag@x.io")
    first = (await user.ok("POST", "/api/agents/tokens", {}, 201))["token"]
    second = (await user.ok("POST", "/api/agents/tokens", {}, 201))["token"]
    key = {"name": "a", "public_key": public_openssh(generate_key())}
    await api.ok("POST", "/api/agents/register", {"token": first, **key}, 201)
    # Registration counts too: the token made before the limit was reached is refused.
    status, body = await api.call("POST", "/api/agents/register", {"token": second, **key})
    assert_error(status, body, 402, "plan_limit_reached")
    assert body["error"]["details"]["limit"] == "agents"
    status, body = await user.call("POST", "/api/agents/tokens", {})
    assert_error(status, body, 402, "plan_limit_reached")
    assert body["error"]["details"] == {"limit": "agents", "plan": "free", "max": 1}
    assert (await user.ok("GET", "/api/billing/usage"))["usage"]["agents"] == 1


async def test_terminal_minutes_spent_get_402_before_the_upgrade(make_api: MakeApi) -> None:
    plans = {"free": PlanSpec(name="Free", session_minutes_per_month=0)}
    api = await make_api(plans=plans, default_plan="free")
    user = await api.sign_up("min@x.io")
    url = f"{api.base}/ws/terminal/ctr_anything?token={user.token}"
    async with api.http.get(url) as resp:
        body = await resp.json()
    assert_error(resp.status, body, 402, "plan_limit_reached")
    assert body["error"]["details"]["limit"] == "session_minutes_per_month"
