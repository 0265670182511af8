"""Accounts: registration, login, refresh-token rotation with reuse detection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from common.errors import Conflict, Forbidden, NotFound, Unauthorized
from common.ids import new_id
from hub.db.engine import Database
from hub.db.models import RefreshToken, User, utcnow
from hub.security import (
    decode_access_token,
    hash_password,
    hash_token,
    issue_access_token,
    new_token,
    verify_password,
)
from hub.settings import HubSettings


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


class Accounts:
    """The account rules; API handlers only translate to and from HTTP."""

    def __init__(self, db: Database, settings: HubSettings, jwt_secret: str) -> None:
        self.db = db
        self.settings = settings
        self._secret = jwt_secret

    async def register(self, email: str, password: str, name: str | None) -> User:
        if not self.settings.registration_enabled:
            raise Forbidden("Registration is turned off on this hub.", code="registration_closed")
        user = User(
            id=new_id("usr"),
            email=email.strip().lower(),
            name=name or "",
            password_hash=hash_password(password),
        )
        async with self.db.session() as s:
            s.add(user)
            try:
                await s.commit()
            except IntegrityError:
                raise Conflict(
                    "An account with this email already exists.", code="email_taken"
                ) from None
        return user

    async def login(self, email: str, password: str, passcode: str | None) -> TokenPair:
        async with self.db.session() as s:
            user = await s.scalar(select(User).where(User.email == email.strip().lower()))
        if not verify_password(user.password_hash if user else None, password) or user is None:
            raise Unauthorized("Wrong email or password.", code="invalid_credentials")
        if user.passcode_enabled:
            # Passcodes (TOTP) arrive with the accounts issue; until then no account has one.
            raise Unauthorized("This account needs its passcode.", code="passcode_required")
        return await self._issue(user, family_id=new_id("tok"))

    async def refresh(self, refresh_token: str) -> TokenPair:
        now = utcnow()
        async with self.db.session() as s:
            row = await s.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token))
            )
            if row is None or row.revoked_at is not None:
                raise Unauthorized("The refresh token is not valid.", code="invalid_token")
            if row.expires_at <= now:
                raise Unauthorized("The refresh token has expired.", code="token_expired")
            # Mark it used atomically: of two racing refreshes, exactly one wins.
            won = await s.execute(
                update(RefreshToken)
                .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
                .values(used_at=now)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                await s.execute(
                    update(RefreshToken)
                    .where(RefreshToken.family_id == row.family_id)
                    .values(revoked_at=now)
                )
                await s.commit()
                raise Unauthorized(
                    "This refresh token was already used; its sessions are signed out.",
                    code="token_reused",
                )
            user = await s.get(User, row.user_id)
            await s.commit()
        if user is None:
            raise Unauthorized("The refresh token is not valid.", code="invalid_token")
        return await self._issue(user, family_id=row.family_id)

    async def logout(self, refresh_token: str | None, user_id: str | None) -> None:
        """Revoke the token's family, or every family of the signed-in user."""
        async with self.db.session() as s:
            if refresh_token:
                row = await s.scalar(
                    select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token))
                )
                if row is not None:
                    await s.execute(
                        update(RefreshToken)
                        .where(RefreshToken.family_id == row.family_id)
                        .values(revoked_at=utcnow())
                    )
            elif user_id:
                await s.execute(
                    update(RefreshToken)
                    .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow())
                )
            await s.commit()

    async def authenticate(self, token: str) -> User:
        """The user behind an access token."""
        user_id = decode_access_token(token, self._secret)
        async with self.db.session() as s:
            user = await s.get(User, user_id)
        if user is None:
            raise Unauthorized("The access token is not valid.", code="invalid_token")
        return user

    async def get_user(self, user_id: str) -> User:
        async with self.db.session() as s:
            user = await s.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def _issue(self, user: User, family_id: str) -> TokenPair:
        refresh = new_token("rrt_")
        async with self.db.session() as s:
            s.add(
                RefreshToken(
                    id=new_id("tok"),
                    user_id=user.id,
                    family_id=family_id,
                    token_hash=hash_token(refresh),
                    expires_at=utcnow() + timedelta(seconds=self.settings.refresh_token_ttl),
                )
            )
            await s.commit()
        ttl = self.settings.access_token_ttl
        return TokenPair(issue_access_token(user.id, self._secret, ttl), refresh, ttl, user)
