"""Rate limits: sliding-window counters behind a small backend interface.

A rule is "at most N events per W seconds" for one key (a client address, an account).
`RateLimiter` is the policy-free mechanism: `check` refuses when a key is at its limit
without counting, `hit` counts one event and refuses at the limit, `record` counts
without refusing, `refund` takes an event back. `AbuseGuard` is the hub's policy:
which entry point counts what, per client address and per account; the SSH gateway
calls `before_ssh_auth` / `ssh_auth_succeeded` the same way the login endpoint does.

The backend is an interface: `MemoryBackend` (a hub alone) keeps at most `limit`
timestamps per key and a bounded number of keys, so an attacker cycling through
addresses cannot grow the hub; `RedisBackend` (several hubs) keeps a sorted set per
key in Redis, expiring with its window, so all hubs count together.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import RateLimited


@dataclass(frozen=True, slots=True)
class Rule:
    limit: int
    window: float

    @classmethod
    def parse(cls, text: str) -> Rule:
        """`"10/60"`: ten events per sixty seconds."""
        count, _, seconds = text.partition("/")
        try:
            rule = cls(int(count), float(seconds))
        except ValueError:
            raise ValueError(f"rate limit {text!r} is not COUNT/SECONDS") from None
        if rule.limit < 1 or rule.window <= 0:
            raise ValueError(f"rate limit {text!r} must allow at least one event per window")
        return rule


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until one more event would be allowed; 0 when allowed
    remaining: int


class Backend(Protocol):
    """Where counters live. Each method is atomic for its key."""

    async def hit(self, key: str, rule: Rule, now: float) -> Decision:
        """Count one event unless the key is at its limit."""
        ...

    async def peek(self, key: str, rule: Rule, now: float) -> Decision:
        """Whether one more event would be allowed, counting nothing."""
        ...

    async def refund(self, key: str) -> None:
        """Take back the newest event of a key (an attempt that turned out fine)."""
        ...

    async def reset(self, key: str) -> None: ...


class MemoryBackend:
    """Counters of this process: a bounded log of recent event times per key."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._logs: OrderedDict[str, deque[float]] = OrderedDict()

    def _log(self, key: str, rule: Rule, now: float) -> deque[float]:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque(maxlen=rule.limit)
            while len(self._logs) > self.max_keys:  # forget the least recently used key
                self._logs.popitem(last=False)
        else:
            self._logs.move_to_end(key)
        horizon = now - rule.window
        while log and log[0] <= horizon:
            log.popleft()
        return log

    @staticmethod
    def _decide(log: deque[float], rule: Rule, now: float) -> Decision:
        if len(log) >= rule.limit:
            return Decision(False, max(log[0] + rule.window - now, 0.001), 0)
        return Decision(True, 0.0, rule.limit - len(log))

    async def hit(self, key: str, rule: Rule, now: float) -> Decision:
        log = self._log(key, rule, now)
        decision = self._decide(log, rule, now)
        if decision.allowed:
            log.append(now)
            return Decision(True, 0.0, decision.remaining - 1)
        return decision

    async def peek(self, key: str, rule: Rule, now: float) -> Decision:
        log = self._logs.get(key)
        if log is None:
            return Decision(True, 0.0, rule.limit)
        return self._decide(self._log(key, rule, now), rule, now)

    async def refund(self, key: str) -> None:
        log = self._logs.get(key)
        if log:
            log.pop()

    async def reset(self, key: str) -> None:
        self._logs.pop(key, None)


# One atomic step over a sorted set of event times: forget events older than the window,
# then refuse at the limit (saying when the oldest leaves) or, when asked, count one.
_REDIS_STEP = """
local key, limit, window, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local n = redis.call('ZCARD', key)
if n >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + window - now), 0}
end
if ARGV[4] == '1' then
  redis.call('ZADD', key, now, ARGV[5])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  return {1, '0', limit - n - 1}
end
return {1, '0', limit - n}
"""


class RedisBackend:
    """Counters every hub of a cluster shares: a sorted set of event times per key,
    each step one Lua script (atomic across hubs), each key expiring with its window.
    `now` must be wall-clock time, the same on every hub (see `cluster_guard`)."""

    def __init__(self, redis: Any, prefix: str = "rexec") -> None:
        self.redis = redis
        self.prefix = f"{prefix}:rate:"
        self._step = redis.register_script(_REDIS_STEP)

    async def _run(self, key: str, rule: Rule, now: float, count: bool) -> Decision:
        member = f"{now!r}:{secrets.token_hex(4)}"
        allowed, retry, remaining = await self._step(
            keys=[self.prefix + key],
            args=[rule.limit, rule.window, repr(now), "1" if count else "0", member],
        )
        if int(allowed):
            return Decision(True, 0.0, int(remaining))
        return Decision(False, max(float(retry), 0.001), 0)

    async def hit(self, key: str, rule: Rule, now: float) -> Decision:
        return await self._run(key, rule, now, True)

    async def peek(self, key: str, rule: Rule, now: float) -> Decision:
        return await self._run(key, rule, now, False)

    async def refund(self, key: str) -> None:
        await self.redis.zpopmax(self.prefix + key)

    async def reset(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)


class RateLimiter:
    """Named rules over a backend; refusals are `RateLimited` (429 with Retry-After)."""

    def __init__(
        self,
        backend: Backend,
        rules: Mapping[str, Rule],
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.rules = dict(rules)
        self.enabled = enabled
        self.clock = clock

    def _refuse(self, retry_after: float, message: str) -> RateLimited:
        seconds = max(1, math.ceil(retry_after))
        return RateLimited(f"{message} Try again in {seconds} s.", retry_after=seconds)

    async def check(self, name: str, *keys: str, message: str = "Too many attempts.") -> None:
        """Refuse when any key is at its limit; count nothing."""
        if not self.enabled:
            return
        rule, now = self.rules[name], self.clock()
        waits = [
            d.retry_after
            for d in [await self.backend.peek(f"{name}:{k}", rule, now) for k in keys]
            if not d.allowed
        ]
        if waits:
            raise self._refuse(max(waits), message)

    async def hit(self, name: str, *keys: str, message: str = "Too many requests.") -> None:
        """Count one event for every key, or refuse (counting nothing) when one is full.
        Each key's count-or-refuse is one atomic backend step, so concurrent requests
        (on this hub or on several) cannot all pass a check before any of them counts."""
        if not self.enabled:
            return
        rule, now = self.rules[name], self.clock()
        counted: list[str] = []
        for key in keys:
            decision = await self.backend.hit(f"{name}:{key}", rule, now)
            if not decision.allowed:
                for done in counted:  # the keys before it were counted: take that back
                    await self.backend.refund(done)
                raise self._refuse(decision.retry_after, message)
            counted.append(f"{name}:{key}")

    async def record(self, name: str, *keys: str) -> None:
        """Count an event that already happened (a failed sign-in)."""
        if not self.enabled:
            return
        rule, now = self.rules[name], self.clock()
        for key in keys:
            await self.backend.hit(f"{name}:{key}", rule, now)

    async def refund(self, name: str, *keys: str) -> None:
        """Take back an event counted by `hit` (the sign-in succeeded after all)."""
        if not self.enabled:
            return
        for key in keys:
            await self.backend.refund(f"{name}:{key}")

    async def reset(self, name: str, *keys: str) -> None:
        for key in keys:
            await self.backend.reset(f"{name}:{key}")


DEFAULT_RULES: dict[str, str] = {
    "login_failures": "10/60",  # failed sign-ins, per address and per account
    "passcode_failures": "10/60",  # wrong codes while setting up or removing a passcode
    "share_passcode_failures": "10/60",  # wrong share passcodes, per share and per address
    "refresh": "60/60",  # refresh calls, per address and per account
    "register": "20/3600",  # new accounts, per address (and per email)
    "tokens": "30/600",  # API and agent token creation, per address and per account
    "ssh_auth_failures": "10/60",  # the SSH gateway's failed authentications
}


def build_rules(overrides: Mapping[str, str]) -> dict[str, Rule]:
    unknown = set(overrides) - set(DEFAULT_RULES)
    if unknown:
        raise ValueError(f"unknown rate limit rules: {', '.join(sorted(unknown))}")
    return {name: Rule.parse(text) for name, text in {**DEFAULT_RULES, **overrides}.items()}


def _ip(address: str) -> str:
    return f"ip:{address}"


def _account(name: str) -> str:
    return f"account:{name.strip().lower()}"


class AbuseGuard:
    """Which entry point counts what; every method raises `RateLimited` to refuse.

    Attempts that may fail (sign-in, passcodes, SSH authentication) are counted before
    they are tried and given back when they succeed: so only failures count, and a
    burst of concurrent guesses cannot slip past the limit while the first ones are
    still being checked.
    """

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def before_login(self, address: str, email: str) -> None:
        await self.limiter.hit(
            "login_failures", _ip(address), _account(email), message="Too many failed sign-ins."
        )

    async def login_succeeded(self, address: str, email: str) -> None:
        await self.limiter.refund("login_failures", _ip(address), _account(email))

    async def before_passcode(self, user_id: str) -> None:
        await self.limiter.hit(
            "passcode_failures", _account(user_id), message="Too many wrong passcodes."
        )

    async def passcode_succeeded(self, user_id: str) -> None:
        await self.limiter.refund("passcode_failures", _account(user_id))

    async def before_share_passcode(self, address: str, share_id: str) -> None:
        await self.limiter.hit(
            "share_passcode_failures",
            _ip(address),
            f"share:{share_id}",
            message="Too many wrong passcodes for this share.",
        )

    async def share_passcode_succeeded(self, address: str, share_id: str) -> None:
        await self.limiter.refund("share_passcode_failures", _ip(address), f"share:{share_id}")

    async def refresh(self, address: str) -> None:
        await self.limiter.hit("refresh", _ip(address), message="Too many token refreshes.")

    async def refresh_account(self, user_id: str) -> None:
        await self.limiter.hit("refresh", _account(user_id), message="Too many token refreshes.")

    async def register(self, address: str, email: str) -> None:
        await self.limiter.hit(
            "register", _ip(address), _account(email), message="Too many new accounts."
        )

    async def token_created(self, address: str, user_id: str) -> None:
        await self.limiter.hit(
            "tokens", _ip(address), _account(user_id), message="Too many new tokens."
        )

    # The SSH gateway's authentication (issue #6), with the same policy as sign-in:
    # `before_ssh_auth` before trying a credential, `ssh_auth_succeeded` when it works.
    async def before_ssh_auth(self, address: str, username: str) -> None:
        await self.limiter.hit(
            "ssh_auth_failures",
            _ip(address),
            _account(username),
            message="Too many failed authentications.",
        )

    async def ssh_auth_succeeded(self, address: str, username: str) -> None:
        await self.limiter.refund("ssh_auth_failures", _ip(address), _account(username))


def memory_guard(overrides: Mapping[str, str], *, enabled: bool = True) -> AbuseGuard:
    """The in-process guard of a hub that runs alone."""
    return AbuseGuard(RateLimiter(MemoryBackend(), build_rules(overrides), enabled=enabled))


def share_counters(guard: AbuseGuard, redis: Any, prefix: str) -> None:
    """Move a guard's counters to Redis, so every hub of a cluster counts together.
    Wall-clock time, since hubs on different machines share no monotonic clock."""
    guard.limiter.backend = RedisBackend(redis, prefix)
    guard.limiter.clock = time.time
