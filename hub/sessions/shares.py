"""Share links: join a session as viewer or writer, with an optional passcode and expiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from common.errors import Forbidden, NotFound, Unauthorized
from common.ids import new_id
from hub.db.engine import Database
from hub.db.models import SessionShare, utcnow
from hub.security import hash_password, hash_token, new_token, verify_password


@dataclass(frozen=True, slots=True)
class NewShare:
    row: SessionShare
    token: str


class Shares:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        session_id: str,
        user_id: str,
        role: str,
        passcode: str | None,
        expires_in: int | None,
    ) -> NewShare:
        token = new_token("rxs_", 24)
        row = SessionShare(
            id=new_id("shr"),
            session_id=session_id,
            created_by=user_id,
            role=role,
            token_hash=hash_token(token),
            passcode_hash=hash_password(passcode) if passcode else None,
            expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
        )
        async with self.db.session() as s:
            s.add(row)
            await s.commit()
        return NewShare(row, token)

    async def list_for(self, session_id: str) -> list[SessionShare]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(SessionShare)
                .where(SessionShare.session_id == session_id)
                .order_by(SessionShare.created_at.desc())
            )
            return list(rows)

    async def revoke(self, session_id: str, share_id: str) -> SessionShare:
        async with self.db.session() as s:
            row = await s.get(SessionShare, share_id)
            if row is None or row.session_id != session_id:
                raise NotFound("No such share.", code="share_not_found")
            if row.revoked_at is None:
                await s.execute(
                    update(SessionShare)
                    .where(SessionShare.id == share_id)
                    .values(revoked_at=utcnow())
                )
                await s.commit()
        return row

    async def resolve(
        self, token: str, passcode: str | None, *, check: bool = True
    ) -> SessionShare:
        """The share behind a link, if it is still good and the passcode matches
        (`check=False`: only that the link is good, to describe it)."""
        async with self.db.session() as s:
            row = await s.scalar(
                select(SessionShare).where(SessionShare.token_hash == hash_token(token))
            )
        if row is None:
            raise NotFound("No such share link.", code="share_not_found")
        if row.revoked_at is not None:
            raise Forbidden("This share link was revoked.", code="share_revoked")
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise Forbidden("This share link has expired.", code="share_expired")
        if check and row.passcode_hash is not None:
            if not passcode:
                raise Unauthorized("This share needs its passcode.", code="passcode_required")
            if not verify_password(row.passcode_hash, passcode):
                raise Unauthorized("Wrong passcode for this share.", code="invalid_passcode")
        return row
