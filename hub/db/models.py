"""Tables of the hub. Times are stored as UTC and always come back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """SQLite returns naive datetimes; this makes every dialect return aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    plan: Mapped[str] = mapped_column(String(40), default="free")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Sealed with a key kept outside the database (hub/passcodes.py: SecretBox).
    passcode_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    passcode_enabled: Mapped[bool] = mapped_column(default=False)
    # The TOTP time step last accepted: a code works once (hub/passcodes.py).
    passcode_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)


class RefreshToken(Base):
    """Opaque refresh tokens, stored hashed; rotation chains them into a family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(40))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AgentToken(Base):
    """Single-use, short-lived registration tokens for new agents (stored hashed)."""

    __tablename__ = "agent_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(Text)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    os: Mapped[str] = mapped_column(String(64), default="")
    arch: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(default=None)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class AgentProof(Base):
    """A spent agent proof (its signed `jti`), kept until the proof expires, so a copy
    replayed to this or any other hub is refused (docs/security.md)."""

    __tablename__ = "agent_proofs"

    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class TerminalSession(Base):
    __tablename__ = "terminal_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), default="live")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    exit_code: Mapped[int | None] = mapped_column(default=None)
    # Enough to re-adopt an agent channel after a hub restart (issue #4).
    channel: Mapped[int | None] = mapped_column(default=None)
    # Output offset received from the source.
    delivered: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cols: Mapped[int] = mapped_column(default=80, server_default="80")
    rows: Mapped[int] = mapped_column(default=24, server_default="24")
    recording: Mapped[str | None] = mapped_column(String(255), default=None)
    recording_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    duration: Mapped[float] = mapped_column(default=0.0, server_default="0")


class SessionShare(Base):
    """A link that lets others join a session with a role, optional passcode and expiry."""

    __tablename__ = "session_shares"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("terminal_sessions.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    passcode_hash: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Container(Base):
    """A hub-managed Docker container; `docker_id` is the engine's id."""

    __tablename__ = "containers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    image: Mapped[str] = mapped_column(String(255))
    docker_id: Mapped[str | None] = mapped_column(String(80), default=None)
    status: Mapped[str] = mapped_column(String(16), default="creating", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    end_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_active: Mapped[datetime] = mapped_column(default=utcnow)


# -- Accounts and billing (issue #5: hub/tokens.py, hub/passcodes.py, hub/audit.py, hub/billing/)

# An autoincrementing 64-bit key; SQLite only autoincrements INTEGER PRIMARY KEY.
SERIAL = BigInteger().with_variant(Integer, "sqlite")


class ApiToken(Base):
    """Personal API tokens (`rx_...`), stored hashed, with scopes and an optional expiry."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # "person" or "agent" (hub/supervision.py): whether the target's policy applies.
    kind: Mapped[str] = mapped_column(String(16), default="agent", server_default="agent")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class RecoveryCode(Base):
    """One-time codes that stand in for a lost passcode device (stored hashed)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEvent(Base):
    """Who did what, from where; `user_id` is empty for attempts on unknown accounts."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(80), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageRecord(Base):
    """A metered interval (a container running, a terminal session open).

    `checked_at` is the hub's last heartbeat for an open interval: after an unclean stop,
    an interval whose subject did not survive is closed there, not at the restart.
    """

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    meter: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(40), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None, index=True)


class Subscription(Base):
    """A user's paid subscription as Stripe last told us; `users.plan` is what applies."""

    __tablename__ = "subscriptions"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    plan: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(32))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(
        String(255), default=None, index=True
    )
    # `created` of the newest Stripe event applied: older ones arriving late are ignored.
    event_created: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingEvent(Base):
    """Stripe events already applied, by their id: a redelivery changes nothing."""

    __tablename__ = "billing_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class SshKey(Base):
    """A user's OpenSSH public key for the SSH gateway; a key belongs to one account."""

    __tablename__ = "ssh_keys"
    # Unique per account only: registering a key proves nothing about owning it, so a
    # key another account registered first must not lock its owner out (the gateway
    # checks the signature, then picks the account by the target's name).
    __table_args__ = (
        UniqueConstraint("user_id", "fingerprint", name="uq_ssh_keys_user_fingerprint"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    algorithm: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="agent", server_default="agent")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


# -- Supervised AI execution (issue #9: hub/approvals/, docs/approvals.md)


class Approval(Base):
    """An AI's command held for a person. Status moves only forward, by conditional
    UPDATEs (`WHERE status = 'pending'`), so a decision and an expiry cannot both win."""

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_user_status", "user_id", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(40), index=True)
    session_id: Mapped[str | None] = mapped_column(String(40), default=None)
    cmd: Mapped[Any] = mapped_column(JSON)  # a shell string or an argv list, as exec takes
    original_cmd: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)  # if edited
    requested_by: Mapped[str] = mapped_column(String(40))  # the API token
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(40), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class Policy(Base):
    """How a target treats an AI's supervised commands; a target without a row has the
    default policy (docs/approvals.md)."""

    __tablename__ = "policies"

    target: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    allow: Mapped[list[str]] = mapped_column(JSON, default=list)
    deny: Mapped[list[str]] = mapped_column(JSON, default=list)
    paused: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
