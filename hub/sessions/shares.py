"""Share links: join a session as viewer or writer, with an optional passcode and expiry.

A link that expires ends its live sockets too, within `SWEEP_EVERY` seconds: each hub
checks the shares its own clients came through (`expiry_context`), so sockets held by
any hub of a cluster end, and so does one whose revocation order was missed.

A passcode is guarded like a password: wrong guesses are rate-limited per share and per
client address (`share_passcode_failures`, 10 a minute by default, counted before the
check and given back on success), argon2 runs off the event loop, and a passcode must
be strong enough (`check_passcode_strength`) that guessing at that rate is pointless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from sqlalchemy import or_, select, update

from common.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from common.ids import new_id
from hub.db.engine import Database
from hub.db.models import SessionShare, utcnow
from hub.ratelimit import AbuseGuard
from hub.security import hash_password, hash_token, new_token, verify_password
from hub.state import BROKER, DB

log = logging.getLogger("rexec.hub.shares")

SWEEP_EVERY = 2.0  # seconds between checks of the shares this hub's sockets use
MIN_PASSCODE_LENGTH = 8
MIN_PASSCODE_DISTINCT = 5
# 2^40 guesses at 10 a minute take about two million years: guessing is pointless.
MIN_PASSCODE_BITS = 40.0


def passcode_bits(passcode: str) -> float:
    """A coarse strength estimate: length times log2 of the character classes used."""
    pool = 0
    pool += 26 if any(c.islower() for c in passcode) else 0
    pool += 26 if any(c.isupper() for c in passcode) else 0
    pool += 10 if any(c.isdigit() for c in passcode) else 0
    pool += 33 if any(not c.isalnum() for c in passcode) else 0
    pool += 100 if any(ord(c) > 127 and c.isalpha() for c in passcode) else 0
    return len(passcode) * math.log2(pool) if pool > 1 else 0.0


def check_passcode_strength(passcode: str) -> None:
    """400 naming `passcode` when it is too weak to withstand rate-limited guessing."""
    if (
        len(passcode) < MIN_PASSCODE_LENGTH
        or len(set(passcode)) < MIN_PASSCODE_DISTINCT
        or passcode_bits(passcode) < MIN_PASSCODE_BITS
    ):
        raise InvalidRequest(
            "passcode is too weak: use at least 8 characters mixing letters and digits "
            "(or a longer phrase).",
            details={"field": "passcode"},
        )


@dataclass(frozen=True, slots=True)
class NewShare:
    row: SessionShare
    token: str


class Shares:
    def __init__(self, db: Database, guard: AbuseGuard) -> None:
        self.db = db
        self.guard = guard

    async def create(
        self,
        session_id: str,
        user_id: str,
        role: str,
        passcode: str | None,
        expires_in: int | None,
    ) -> NewShare:
        if passcode is not None:
            check_passcode_strength(passcode)
        token = new_token("rxs_", 24)
        row = SessionShare(
            id=new_id("shr"),
            session_id=session_id,
            created_by=user_id,
            role=role,
            token_hash=hash_token(token),
            passcode_hash=await hash_password(passcode) if passcode else None,
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

    async def resolve(self, token: str) -> SessionShare:
        """The share behind a link, if the link is still good (not revoked or expired)."""
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
        return row

    async def open(self, token: str, passcode: str | None, address: str) -> SessionShare:
        """The share behind a link, for a caller at `address` who gives its passcode
        (where it has one). A wrong guess counts against the share and the address."""
        row = await self.resolve(token)
        if row.passcode_hash is None:
            return row
        if not passcode:
            raise Unauthorized("This share needs its passcode.", code="passcode_required")
        await self.guard.before_share_passcode(address, row.id)
        if not await verify_password(row.passcode_hash, passcode):
            raise Unauthorized("Wrong passcode for this share.", code="invalid_passcode")
        await self.guard.share_passcode_succeeded(address, row.id)
        return row


async def ended_shares(db: Database, share_ids: set[str]) -> set[str]:
    """Which of these shares have expired or were revoked."""
    if not share_ids:
        return set()
    async with db.session() as s:
        rows = await s.scalars(
            select(SessionShare.id).where(
                SessionShare.id.in_(share_ids),
                or_(SessionShare.expires_at <= utcnow(), SessionShare.revoked_at.is_not(None)),
            )
        )
        return set(rows)


async def sweep(app: web.Application) -> None:
    """Close this hub's sockets whose share link has ended (4403, like a revocation)."""
    broker = app[BROKER]
    ended = await ended_shares(app[DB], broker.tag_values("share"))
    if ended:
        broker.kick_all(lambda c: c.tags.get("share") in ended, 4403, "The share link has expired.")


async def expiry_context(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: sweep every `SWEEP_EVERY` seconds while the hub runs."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await sweep(app)
            except Exception:
                log.exception("checking share expiry failed")

    task = asyncio.get_running_loop().create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
