"""Typed results of the API: frozen dataclasses built from the hub's JSON.

Each keeps the answer it came from in `raw` (not compared, not shown), so fields the
hub adds as documented extensions stay reachable and `--json` prints what the hub said.
Parsing is lenient about missing optional fields and strict about nothing else: the
contract is API.md, and a newer hub may add fields.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Self

Json = Mapping[str, Any]


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (`2026-11-23T20:30:00Z`) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _str(data: Json, key: str, default: str = "") -> str:
    value = data.get(key)
    return value if isinstance(value, str) else default


def _opt_str(data: Json, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _int(data: Json, key: str, default: int = 0) -> int:
    value = data.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _opt_float(data: Json, key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _map(data: Json, key: str) -> dict[str, Any]:
    value = data.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    plan: str
    created_at: datetime | None
    passcode_enabled: bool
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            id=_str(data, "id"),
            email=_str(data, "email"),
            name=_str(data, "name"),
            plan=_str(data, "plan"),
            created_at=parse_time(data.get("created_at")),
            passcode_enabled=bool(data.get("passcode_enabled")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class PasscodeSetup:
    """What `POST /api/user/passcode` answers first: the secret for the authenticator app."""

    secret: str
    otpauth_uri: str
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        uri = _str(data, "otpauth_uri") or _str(data, "uri") or _str(data, "otpauth_url")
        return cls(secret=_str(data, "secret"), otpauth_uri=uri, raw=data)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token (`rx_...`); `token` is set only in the answer that created it."""

    id: str
    name: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    created_at: datetime | None
    token: str | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        scopes = data.get("scopes")
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name"),
            scopes=tuple(s for s in scopes if isinstance(s, str))
            if isinstance(scopes, list)
            else (),
            expires_at=parse_time(data.get("expires_at")),
            created_at=parse_time(data.get("created_at")),
            token=_opt_str(data, "token"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class SshKey:
    id: str
    name: str
    fingerprint: str
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name"),
            fingerprint=_str(data, "fingerprint"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    name: str
    image: str
    status: str
    created_at: datetime | None
    expires_at: datetime | None
    limits: dict[str, Any]
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name"),
            image=_str(data, "image"),
            status=_str(data, "status"),
            created_at=parse_time(data.get("created_at")),
            expires_at=parse_time(data.get("expires_at")),
            limits=_map(data, "limits"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            exit_code=_int(data, "exit_code", -1),
            stdout=_str(data, "stdout"),
            stderr=_str(data, "stderr"),
            duration_ms=_int(data, "duration_ms"),
            timed_out=bool(data.get("timed_out")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Approval:
    """A supervised command waiting for (or decided by) a person."""

    id: str
    status: str
    cmd: Any
    target: str
    session: str | None
    requested_by: str
    created_at: datetime | None
    result: ExecResult | None
    reason: str | None = None  # why it was held; once rejected or expired, why it did not run
    original_cmd: Any = None  # what the AI asked for, when a person edited it
    expires_at: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @property
    def decided(self) -> bool:
        return self.status != "pending"

    @property
    def command(self) -> str:
        """The command as one line (an argv list is quoted as a shell would read it)."""
        return self.cmd if isinstance(self.cmd, str) else shlex.join(str(a) for a in self.cmd)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        result = data.get("result")
        return cls(
            id=_str(data, "id"),
            status=_str(data, "status"),
            cmd=data.get("cmd"),
            target=_str(data, "target"),
            session=_opt_str(data, "session"),
            requested_by=_str(data, "requested_by"),
            created_at=parse_time(data.get("created_at")),
            result=ExecResult.from_json(result) if isinstance(result, Mapping) else None,
            reason=_opt_str(data, "reason"),
            original_cmd=data.get("original_cmd"),
            expires_at=parse_time(data.get("expires_at")),
            decided_by=_opt_str(data, "decided_by"),
            decided_at=parse_time(data.get("decided_at")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Policy:
    mode: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    paused: bool = False
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        def patterns(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

        return cls(
            mode=_str(data, "mode"),
            allow=patterns("allow"),
            deny=patterns("deny"),
            paused=bool(data.get("paused")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    hostname: str
    os: str
    arch: str
    version: str
    status: str
    last_seen: datetime | None
    metrics: dict[str, Any]
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @property
    def online(self) -> bool:
        return self.status == "online"

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name"),
            hostname=_str(data, "hostname"),
            os=_str(data, "os"),
            arch=_str(data, "arch"),
            version=_str(data, "version"),
            status=_str(data, "status"),
            last_seen=parse_time(data.get("last_seen")),
            metrics=_map(data, "metrics"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class AgentToken:
    """A one-time registration token and the install line that spends it."""

    token: str
    expires_at: datetime | None
    install_command: str
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            token=_str(data, "token"),
            expires_at=parse_time(data.get("expires_at")),
            install_command=_str(data, "install_command"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    available: bool
    bytes: int
    duration: float | None

    @classmethod
    def from_json(cls, data: Any) -> RecordingInfo:
        if not isinstance(data, Mapping):
            return cls(available=False, bytes=0, duration=None)
        return cls(
            available=bool(data.get("available")),
            bytes=_int(data, "bytes"),
            duration=_opt_float(data, "duration"),
        )


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    target: str
    owner: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    participants: tuple[Any, ...]
    recording: RecordingInfo
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @property
    def live(self) -> bool:
        return self.status == "live"

    @classmethod
    def from_json(cls, data: Json) -> Self:
        participants = data.get("participants")
        owner = data.get("owner")
        if isinstance(owner, Mapping):  # a user object rather than an id
            owner = owner.get("email") or owner.get("id")
        return cls(
            id=_str(data, "id"),
            target=_str(data, "target"),
            owner=owner if isinstance(owner, str) else "",
            status=_str(data, "status"),
            started_at=parse_time(data.get("started_at")),
            ended_at=parse_time(data.get("ended_at")),
            participants=tuple(participants) if isinstance(participants, list) else (),
            recording=RecordingInfo.from_json(data.get("recording")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Share:
    share: str
    url: str
    expires_at: datetime | None
    token: str | None = None  # what `attach(..., share=token)` joins with
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        share = data.get("share")
        token = None
        if isinstance(share, Mapping):  # a share object rather than its id
            token = _opt_str(share, "token")
            share = share.get("id")
        return cls(
            share=share if isinstance(share, str) else "",
            token=token,
            url=_str(data, "url"),
            expires_at=parse_time(data.get("expires_at")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    price_cents: int
    interval: str
    limits: dict[str, Any]
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name"),
            price_cents=_int(data, "price_cents"),
            interval=_str(data, "interval"),
            limits=_map(data, "limits"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    """`POST /api/billing/subscribe`: a checkout URL to visit, or the subscription itself."""

    checkout_url: str | None
    subscription: dict[str, Any] | None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        sub = data.get("subscription")
        return cls(
            checkout_url=_opt_str(data, "checkout_url"),
            subscription=dict(sub) if isinstance(sub, Mapping) else None,
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Usage:
    plan: str
    period_start: datetime | None
    period_end: datetime | None
    usage: dict[str, Any]
    limits: dict[str, Any]
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            plan=_str(data, "plan"),
            period_start=parse_time(data.get("period_start")),
            period_end=parse_time(data.get("period_end")),
            usage=_map(data, "usage"),
            limits=_map(data, "limits"),
            raw=data,
        )


Role = Literal["viewer", "writer"]
PolicyMode = Literal["auto", "approve_all", "approve_risky"]
