"""Rate limits: the sliding window itself, and the hub's entry points (429 with
Retry-After) per client address and per account."""

from __future__ import annotations

import asyncio
import json

import pytest

from common.errors import RateLimited
from hub.ratelimit import AbuseGuard, MemoryBackend, RateLimiter, Rule, build_rules
from tests.accounts.conftest import MakeApi
from tests.support import Api, assert_error

PASSWORD = "correct horse 1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_sliding_window() -> None:
    clock = Clock()
    limiter = RateLimiter(MemoryBackend(), {"r": Rule(3, 60)}, clock=clock)
    for _ in range(3):
        await limiter.hit("r", "k")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit("r", "k")
    assert refused.value.retry_after == 60
    await limiter.hit("r", "other")  # keys are independent
    clock.now += 30
    with pytest.raises(RateLimited) as refused:
        await limiter.check("r", "k")
    assert refused.value.retry_after == 30
    clock.now += 30.5  # the first event has left the window
    await limiter.hit("r", "k")


async def test_memory_is_bounded() -> None:
    backend = MemoryBackend(max_keys=100)
    rule = Rule(5, 60)
    for i in range(1000):
        for _ in range(10):
            await backend.hit(f"k{i}", rule, 0.0)
    assert len(backend._logs) == 100
    assert all(len(log) <= 5 for log in backend._logs.values())


def test_rules_parse() -> None:
    assert build_rules({"login_failures": "3/10"})["login_failures"] == Rule(3, 10.0)
    for bad in ({"login_failures": "x"}, {"login_failures": "0/10"}, {"nope": "1/1"}):
        with pytest.raises(ValueError):
            build_rules(bad)


async def test_guard_for_the_ssh_gateway() -> None:
    guard = AbuseGuard(RateLimiter(MemoryBackend(), build_rules({"ssh_auth_failures": "2/60"})))
    for _ in range(5):  # successes are given back
        await guard.before_ssh_auth("10.0.0.1", "ctr_abc")
        await guard.ssh_auth_succeeded("10.0.0.1", "ctr_abc")
    for _ in range(2):  # failures are not
        await guard.before_ssh_auth("10.0.0.1", "ctr_abc")
    with pytest.raises(RateLimited):
        await guard.before_ssh_auth("10.0.0.1", "other")  # the address is spent


async def test_eleventh_failed_login_in_a_minute_gets_429(api: Api) -> None:
    await api.ok("POST", "/api/register", {"email": "a@x.io", "password": PASSWORD}, 201)
    for _ in range(12):  # successful sign-ins do not count
        await api.ok("POST", "/api/login", {"email": "a@x.io", "password": PASSWORD})
    wrong = {"email": "a@x.io", "password": "not the password"}
    for _ in range(10):
        status, body = await api.call("POST", "/api/login", wrong)
        assert_error(status, body, 401, "invalid_credentials")
    async with api.http.post(f"{api.base}/api/login", data=json.dumps(wrong)) as resp:
        body = await resp.json()
        assert_error(resp.status, body, 429, "rate_limited")
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # Even the right password waits now: the guess would tell the attacker.
    status, body = await api.call("POST", "/api/login", {"email": "a@x.io", "password": PASSWORD})
    assert_error(status, body, 429, "rate_limited")


async def test_per_account_limit_spans_addresses(make_api: MakeApi) -> None:
    # Behind a trusted proxy each request brings its own client address.
    api = await make_api(trusted_proxies=["127.0.0.1"], rate_limits={"login_failures": "3/60"})
    await api.ok("POST", "/api/register", {"email": "b@x.io", "password": PASSWORD}, 201)
    wrong = json.dumps({"email": "b@x.io", "password": "wrong wrong"})
    codes = []
    for i in range(4):
        headers = {"X-Forwarded-For": f"198.51.100.{i}"}
        async with api.http.post(f"{api.base}/api/login", data=wrong, headers=headers) as resp:
            codes.append(resp.status)
    assert codes == [401, 401, 401, 429]
    # Another account from a fresh address is not held back.
    await api.ok("POST", "/api/register", {"email": "c@x.io", "password": PASSWORD}, 201)


async def test_register_refresh_and_token_creation(make_api: MakeApi) -> None:
    api = await make_api(rate_limits={"register": "2/3600", "refresh": "2/60", "tokens": "2/600"})
    user = await api.sign_up("r1@x.io")
    await api.ok("POST", "/api/register", {"email": "r2@x.io", "password": PASSWORD}, 201)
    status, body = await api.call(
        "POST", "/api/register", {"email": "r3@x.io", "password": PASSWORD}
    )
    assert_error(status, body, 429, "rate_limited")
    tokens = await api.ok("POST", "/api/login", {"email": "r1@x.io", "password": PASSWORD})
    refresh = tokens["refresh_token"]
    for _ in range(2):
        refresh = (await api.ok("POST", "/api/refresh", {"refresh_token": refresh}))[
            "refresh_token"
        ]
    status, body = await api.call("POST", "/api/refresh", {"refresh_token": refresh})
    assert_error(status, body, 429, "rate_limited")
    await user.ok("POST", "/api/user/tokens", {"name": "1"}, 201)
    await user.ok("POST", "/api/agents/tokens", {}, 201)  # agent tokens count too
    status, body = await user.call("POST", "/api/user/tokens", {"name": "3"})
    assert_error(status, body, 429, "rate_limited")


async def test_limits_can_be_turned_off(make_api: MakeApi) -> None:
    api = await make_api(rate_limits_enabled=False)
    for _ in range(12):
        status, _ = await api.call("POST", "/api/login", {"email": "z@x.io", "password": "x"})
        assert status == 401


async def test_concurrent_guesses_cannot_slip_past(make_api: MakeApi) -> None:
    api = await make_api(rate_limits={"login_failures": "5/60"})
    await api.ok("POST", "/api/register", {"email": "d@x.io", "password": PASSWORD}, 201)
    wrong = {"email": "d@x.io", "password": "wrong wrong"}
    results = await asyncio.gather(*(api.call("POST", "/api/login", wrong) for _ in range(20)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [401] * 5 + [429] * 15
