"""Typed results of the API: frozen dataclasses built from the hub's JSON.

Each keeps the answer it came from in `raw` (not compared, not shown), so fields the
hub adds as documented extensions stay reachable and `--json` prints what the hub said.
Parsing is lenient about missing optional fields and strict about nothing else: the
contract is API.md, and a newer hub may add fields. One reader, `Model.from_json`,
builds every model from its field types; a model overrides it only for a field whose
JSON has another shape.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
import types
import typing
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


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read(hint: Any, value: Any, missing: Any) -> Any:
    """`value` read as a field of type `hint`; a required scalar that is absent or of
    another type reads as `missing`, an optional one as None."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:  # X | None
        (inner,) = (a for a in args if a is not type(None))
        if value is None or (_is_model(inner) and not isinstance(value, Mapping)):
            return None
        return _read(inner, value, None)
    if hint is datetime:
        return parse_time(value)
    if hint is str:
        return value if isinstance(value, str) else missing
    if hint is bool:
        return bool(value)
    if hint in (int, float):
        return hint(value) if _number(value) else missing
    if typing.get_origin(hint) is dict:
        if isinstance(value, Mapping):
            return dict(value)
        return None if missing is None else {}  # optional: None; required: a fresh {}
    if typing.get_origin(hint) is tuple:
        items = value if isinstance(value, list) else []
        return tuple(v for v in items if args[0] is Any or isinstance(v, args[0]))
    if _is_model(hint):
        return hint.from_json(value)
    return value  # Any: as the hub sent it


def _is_model(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Model)


@functools.cache
def _fields(cls: type) -> tuple[tuple[tuple[str, Any, Any], ...], bool]:
    """(name, type, value when absent) of a model's fields but `raw`, and whether it
    has `raw`: read once per model."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    read = tuple(
        (f.name, hints[f.name], f.metadata.get("missing", _EMPTY.get(hints[f.name], "")))
        for f in fields
        if f.name != "raw"
    )
    return read, any(f.name == "raw" for f in fields)


# What an absent (or mistyped) required scalar reads as, by type.
_EMPTY: dict[Any, Any] = {str: "", int: 0, float: 0.0}


class Model:
    """Base of the API's result types: `from_json` reads each field by its type."""

    __slots__ = ()

    @classmethod
    def from_json(cls, data: Any) -> Self:
        return cls._build(data)

    @classmethod
    def _build(cls, data: Any, **given: Any) -> Self:
        """The model from `data`, with `given` fields taken as they are."""
        data = data if isinstance(data, Mapping) else {}
        read, has_raw = _fields(typing.cast(type, cls))
        values = {
            name: given[name] if name in given else _read(hint, data.get(name), missing)
            for name, hint, missing in read
        }
        if has_raw:
            values["raw"] = data
        return typing.cast(Self, typing.cast(Any, cls)(**values))


@dataclass(frozen=True, slots=True)
class User(Model):
    id: str
    email: str
    name: str
    plan: str
    created_at: datetime | None
    passcode_enabled: bool
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class PasscodeSetup(Model):
    """What `POST /api/user/passcode` answers first: the secret for the authenticator app."""

    secret: str
    otpauth_uri: str
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> Self:
        names = ("otpauth_uri", "uri", "otpauth_url")
        uri = next((data[k] for k in names if isinstance(data.get(k), str) and data[k]), "")
        return cls._build(data, otpauth_uri=uri)


@dataclass(frozen=True, slots=True)
class ApiToken(Model):
    """An API token (`rx_...`); `token` is set only in the answer that created it."""

    id: str
    name: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    created_at: datetime | None
    # "agent" (under targets' policies) or "person"; a hub before the kind: "agent"
    kind: str = field(default="agent", metadata={"missing": "agent"})
    token: str | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SshKey(Model):
    id: str
    name: str
    fingerprint: str
    kind: str = field(default="agent", metadata={"missing": "agent"})  # or "person"
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Container(Model):
    id: str
    name: str
    image: str
    status: str
    created_at: datetime | None
    expires_at: datetime | None
    limits: dict[str, Any]
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ExecResult(Model):
    exit_code: int = field(metadata={"missing": -1})
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Approval(Model):
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


@dataclass(frozen=True, slots=True)
class Policy(Model):
    mode: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    paused: bool = False
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Agent(Model):
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


@dataclass(frozen=True, slots=True)
class AgentToken(Model):
    """A one-time registration token and the install line that spends it."""

    token: str
    expires_at: datetime | None
    install_command: str
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RecordingInfo(Model):
    available: bool
    bytes: int
    duration: float | None


@dataclass(frozen=True, slots=True)
class Session(Model):
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
    def from_json(cls, data: Any) -> Self:
        owner = data.get("owner")
        if isinstance(owner, Mapping):  # a user object rather than an id
            owner = owner.get("email") or owner.get("id")
        return cls._build(data, owner=owner if isinstance(owner, str) else "")


@dataclass(frozen=True, slots=True)
class Share(Model):
    share: str
    url: str
    expires_at: datetime | None
    token: str | None = None  # what `attach(..., share=token)` joins with
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> Self:
        share = data.get("share")
        token = None
        if isinstance(share, Mapping):  # a share object rather than its id
            token = share.get("token") if isinstance(share.get("token"), str) else None
            share = share.get("id")
        return cls._build(data, share=share if isinstance(share, str) else "", token=token)


@dataclass(frozen=True, slots=True)
class Plan(Model):
    id: str
    name: str
    price_cents: int
    interval: str
    limits: dict[str, Any]
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Subscription(Model):
    """`POST /api/billing/subscribe`: a checkout URL to visit, or the subscription itself."""

    checkout_url: str | None
    subscription: dict[str, Any] | None
    raw: Json = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Usage(Model):
    plan: str
    period_start: datetime | None
    period_end: datetime | None
    usage: dict[str, Any]
    limits: dict[str, Any]
    raw: Json = field(default_factory=dict, repr=False, compare=False)


Role = Literal["viewer", "writer"]
PolicyMode = Literal["auto", "approve_all", "approve_risky"]
