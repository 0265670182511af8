"""Accounts: registration, login (with a passcode where set), refresh-token rotation
with reuse detection, and who a bearer token stands for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, select, true, update
from sqlalchemy.exc import IntegrityError

from common.errors import Conflict, Forbidden, NotFound, Unauthorized
from common.ids import new_id
from hub import audit
from hub.db.engine import Database
from hub.db.models import RefreshToken, User, utcnow
from hub.passcodes import Passcodes, SecretBox
from hub.ratelimit import AbuseGuard
from hub.security import (
    decode_access_token,
    hash_password,
    hash_token,
    issue_access_token,
    new_token,
    verify_password,
)
from hub.settings import HubSettings
from hub.tokens import PREFIX as API_TOKEN_PREFIX
from hub.tokens import ApiTokens, Principal


class EmailTaken(Conflict):
    """The email has an account already. `stand_in` is the user that registration
    would have made: the public API answers with it, so that registering tells nobody
    whether an email has an account (the administrator's CLI says so)."""

    def __init__(self, stand_in: User) -> None:
        super().__init__("An account with this email already exists.", code="email_taken")
        self.stand_in = stand_in


class TokenReused(Unauthorized):
    """A used refresh token came back: its whole sign-in (`family`) was revoked."""

    def __init__(self, user_id: str, family: str) -> None:
        super().__init__(
            "This refresh token was already used; its sessions are signed out.",
            code="token_reused",
        )
        self.user_id = user_id
        self.family = family


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


class Accounts:
    """The account rules; API handlers only translate to and from HTTP."""

    def __init__(
        self,
        db: Database,
        settings: HubSettings,
        jwt_secret: str,
        guard: AbuseGuard | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self._secret = jwt_secret
        self.guard = guard
        self.tokens = ApiTokens(db)
        master = settings.secret_key.get_secret_value() if settings.secret_key else jwt_secret
        self.passcodes = Passcodes(db, settings.passcode_issuer, SecretBox(master))

    async def register(self, email: str, password: str, name: str | None) -> User:
        if not self.settings.registration_enabled:
            raise Forbidden("Registration is turned off on this hub.", code="registration_closed")
        user = User(
            id=new_id("usr"),
            email=email.strip().lower(),
            name=name or "",
            password_hash=await hash_password(password),
            # Set here, not left to column defaults: a stand-in (EmailTaken) needs them.
            plan="free",
            created_at=utcnow(),
            passcode_enabled=False,
        )
        async with self.db.session() as s:
            s.add(user)
            try:
                await s.commit()
            except IntegrityError:
                raise EmailTaken(user) from None
        return user

    async def login(
        self, email: str, password: str, passcode: str | None, *, ip: str | None = None
    ) -> TokenPair:
        async with self.db.session() as s:
            user = await s.scalar(select(User).where(User.email == email.strip().lower()))
        if (
            not await verify_password(user.password_hash if user else None, password)
            or user is None
        ):
            detail = {"reason": "invalid_credentials"}
            if user is None:
                detail["email"] = email.strip().lower()[:320]
            await audit.record(
                self.db, "login.failed", user_id=user.id if user else None, ip=ip, detail=detail
            )
            raise Unauthorized("Wrong email or password.", code="invalid_credentials")
        method = "password"
        if user.passcode_enabled:
            used = await self.passcodes.verify(user.id, passcode) if passcode else None
            if used is None:
                reason = "wrong_passcode" if passcode else "passcode_required"
                await audit.record(
                    self.db, "login.failed", user_id=user.id, ip=ip, detail={"reason": reason}
                )
                raise Unauthorized(
                    "This account needs its passcode: send the current code from your "
                    "authenticator app (or a recovery code) as `passcode`."
                    if not passcode
                    else "The passcode is wrong or was already used.",
                    code="passcode_required",
                )
            method = f"password+{used}"
        await audit.record(
            self.db, "login.succeeded", user_id=user.id, ip=ip, detail={"method": method}
        )
        return await self._issue(user, family_id=new_id("tok"))

    async def refresh(self, refresh_token: str, *, ip: str | None = None) -> TokenPair:
        now = utcnow()
        async with self.db.session() as s:
            row = await s.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token))
            )
            if row is None or row.revoked_at is not None:
                raise Unauthorized("The refresh token is not valid.", code="invalid_token")
            if row.expires_at <= now:
                raise Unauthorized("The refresh token has expired.", code="token_expired")
            if self.guard is not None:
                await self.guard.refresh_account(row.user_id)
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
                await audit.record(self.db, "refresh.reused", user_id=row.user_id, ip=ip)
                raise TokenReused(row.user_id, row.family_id)
            user = await s.get(User, row.user_id)
            await s.commit()
        if user is None:
            raise Unauthorized("The refresh token is not valid.", code="invalid_token")
        return await self._issue(user, family_id=row.family_id)

    async def logout(
        self,
        refresh_token: str | None,
        user_id: str | None,
        *,
        everywhere: bool = False,
        revoke_tokens: bool = False,
        ip: str | None = None,
    ) -> tuple[str | None, str | None]:
        """Revoke the token's family, or (`everywhere`, or no refresh token) every
        family of the user; `revoke_tokens` with it revokes the user's API tokens too.
        Answers the user and the family revoked (None: all of that user's)."""
        family: str | None = None
        now = utcnow()
        async with self.db.session() as s:
            if refresh_token:
                row = await s.scalar(
                    select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token))
                )
                user_id = family = None
                if row is not None:
                    user_id, family = row.user_id, row.family_id
                    # A spent or stale token ends its own sign-in only, never the others.
                    if row.revoked_at is not None or row.expires_at <= now:
                        everywhere = False
            everywhere = everywhere or not refresh_token
            if family is not None and not everywhere:
                await s.execute(
                    update(RefreshToken)
                    .where(RefreshToken.family_id == family)
                    .values(revoked_at=now)
                )
            elif user_id:
                family = None
                await s.execute(
                    update(RefreshToken)
                    .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                if revoke_tokens:
                    await self.tokens.revoke_all(s, user_id, now)
            await s.commit()
        if user_id:
            detail = {"everywhere": everywhere, "revoke_tokens": everywhere and revoke_tokens}
            await audit.record(self.db, "logout", user_id=user_id, ip=ip, detail=detail)
        return user_id, family

    async def principal(self, token: str, *, ip: str | None = None) -> Principal:
        """Who a bearer token stands for, and with which scopes."""
        if token.startswith(API_TOKEN_PREFIX):
            return await self.tokens.authenticate(token, ip)
        return Principal(await self.authenticate(token), frozenset({"all"}))

    async def authenticate(self, token: str) -> User:
        """The user behind an access token. A token of a sign-in that was signed out
        (its refresh family revoked) stops working at once, on every hub: the
        database, not this process, says so."""
        user_id, family = decode_access_token(token, self._secret)
        signed_in = (
            exists()
            .where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None))
            .correlate(None)
            if family is not None
            else true()
        )
        async with self.db.session() as s:  # one query: the user, and is the sign-in live
            found = (await s.execute(select(User, signed_in).where(User.id == user_id))).first()
        if found is None:
            raise Unauthorized("The access token is not valid.", code="invalid_token")
        user, live = found
        if not live:
            raise Unauthorized("This sign-in has ended; sign in again.", code="signed_out")
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
        access = issue_access_token(user.id, self._secret, ttl, family_id)
        return TokenPair(access, refresh, ttl, user)
