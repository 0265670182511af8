"""The Redis-backed pieces against a real Redis: counters and the bus."""

from __future__ import annotations

import secrets

import pytest
from redis.asyncio import Redis

from common.errors import RateLimited
from hub.cluster import RedisBus
from hub.ratelimit import RateLimiter, RedisBackend, Rule
from tests.accounts.test_ratelimit import Clock
from tests.support import redis_url

pytestmark = pytest.mark.backend_independent  # no hub database at all


async def test_sliding_window_in_redis() -> None:
    redis = Redis.from_url(redis_url(), decode_responses=True)
    try:
        clock, key = Clock(), secrets.token_hex(6)
        limiter = RateLimiter(RedisBackend(redis), {key: Rule(3, 60)}, clock=clock)
        for _ in range(3):
            await limiter.hit(key, "k")
        with pytest.raises(RateLimited) as refused:
            await limiter.hit(key, "k")
        assert refused.value.retry_after == 60
        clock.now += 30
        with pytest.raises(RateLimited) as refused:
            await limiter.check(key, "k")
        assert refused.value.retry_after == 30
        await limiter.refund(key, "k")  # one given back: room for one more
        await limiter.hit(key, "k")
        clock.now += 30.5  # the first event has left the window
        await limiter.hit(key, "k")
        ttl = await redis.pttl(f"rexec:rate:{key}:k")
        assert 0 < ttl <= 60_000  # counters expire with their window
    finally:
        await redis.aclose()


async def test_bus_delivers_between_connections_after_subscribe_returns() -> None:
    one = Redis.from_url(redis_url(), decode_responses=True)
    two = Redis.from_url(redis_url(), decode_responses=True)
    bus_a, bus_b = RedisBus(one, "node-a"), RedisBus(two, "node-b")
    await bus_a.start()
    await bus_b.start()
    topic = f"t-{secrets.token_hex(4)}"
    try:
        async with bus_b.subscribe(topic) as sub:
            # Subscribed means confirmed by Redis: a message published now arrives.
            await bus_a.publish(topic, {"n": 1})
            assert await sub.get(5) == {"n": 1}
            async with bus_b.subscribe(topic) as second:  # two local subscribers, one in Redis
                await bus_a.publish(topic, {"n": 2})
                assert await sub.get(5) == {"n": 2}
                assert await second.get(5) == {"n": 2}
            await bus_a.publish(topic, {"n": 3})
            assert await sub.get(5) == {"n": 3}
    finally:
        await bus_a.close()
        await bus_b.close()
        await one.aclose()
        await two.aclose()
