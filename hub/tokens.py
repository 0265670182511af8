"""API tokens (`rx_...`): created with scopes and an optional expiry, shown once, stored
as SHA-256 hashes, revocable at once (every use is checked against the database), with
the time of last use recorded.

`Principal` is who is calling and with which powers: the user, the token's scopes (a
sign-in's access token holds `all`) and the credential's kind: a person's or an agent's
(hub/approvals/guard.py; a sign-in is a person's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, NotFound, Unauthorized
from common.ids import has_prefix, new_id
from hub import audit, scopes
from hub.db.engine import Database
from hub.db.models import ApiToken, User, utcnow
from hub.security import hash_token, new_token

PREFIX = "rx_"
MAX_TOKENS = 100  # live tokens per user
LAST_USED_EVERY = timedelta(seconds=15)  # how stale `last_used_at` may be
AUDIT_USE_EVERY = timedelta(hours=1)  # a `token.used` event at first use, then hourly


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    scopes: frozenset[str]
    token_id: str | None = None  # the API token, or None for a sign-in's access token
    kind: str = "person"  # "person" or "agent": whether targets' policies apply

    def allows(self, scope: str) -> bool:
        return scopes.allows(self.scopes, scope)


class ApiTokens:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        user_id: str,
        name: str,
        token_scopes: list[str] | None,
        expires_in: int | None,
        kind: str = "agent",
    ) -> tuple[str, ApiToken]:
        granted = sorted(set(token_scopes or scopes.DEFAULT_TOKEN_SCOPES))
        token = new_token(PREFIX)
        row = ApiToken(
            id=new_id("tok"),
            user_id=user_id,
            name=name,
            token_hash=hash_token(token),
            scopes=granted,
            kind=kind,
            expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
        )
        async with self.db.session() as s:
            live = await s.scalar(
                select(func.count(ApiToken.id)).where(
                    ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)
                )
            )
            if (live or 0) >= MAX_TOKENS:
                raise Conflict(
                    f"You have {MAX_TOKENS} tokens; revoke some first.", code="too_many_tokens"
                )
            s.add(row)
            await s.commit()
        return token, row

    async def list(self, user_id: str) -> list[ApiToken]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(ApiToken)
                .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
            )
            return list(rows)

    async def revoke(self, user_id: str, token_id: str) -> ApiToken:
        async with self.db.session() as s:
            row = await s.get(ApiToken, token_id) if has_prefix(token_id, "tok") else None
            if row is None or row.user_id != user_id or row.revoked_at is not None:
                raise NotFound("No such token.", code="token_not_found")
            row.revoked_at = utcnow()
            await s.commit()
        return row

    @staticmethod
    async def revoke_all(s: AsyncSession, user_id: str, now: datetime) -> None:
        """Revoke every live API token of a user (a sign-out everywhere that asks)."""
        await s.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def authenticate(self, token: str, ip: str | None = None) -> Principal:
        now = utcnow()
        async with self.db.session() as s:
            row = await s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
            if row is None or row.revoked_at is not None:
                raise Unauthorized("The API token is not valid.", code="invalid_token")
            if row.expires_at is not None and row.expires_at <= now:
                raise Unauthorized("The API token has expired.", code="token_expired")
            user = await s.get(User, row.user_id)
            if user is None:
                raise Unauthorized("The API token is not valid.", code="invalid_token")
            last = row.last_used_at
            if last is None or now - last >= LAST_USED_EVERY:
                await s.execute(
                    update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
                )
                await s.commit()
        if last is None or now - last >= AUDIT_USE_EVERY:
            await audit.record(self.db, "token.used", user_id=user.id, target=row.id, ip=ip)
        return Principal(user, frozenset(row.scopes), row.id, row.kind)
