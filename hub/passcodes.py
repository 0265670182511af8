"""Passcodes: TOTP second factor (RFC 6238) and one-time recovery codes.

Set-up is two steps: `begin` stores a fresh secret (not yet in force) and hands out the
secret and its otpauth URI for an authenticator app; `confirm` with a current code
turns it on and answers ten recovery codes, shown this once and stored hashed. At
sign-in a code is accepted within one step of the hub's clock, and only once: the
step it matched is kept and a code from that step or an earlier one is refused, so an
observed code cannot be replayed. A recovery code works once (a conditional UPDATE
marks it used, so of two racing sign-ins one wins).

The TOTP secret is sealed in the database (`SecretBox`: AES-256-GCM) under a key kept
outside it: derived from the `secret_key` setting, or
from the hub's JWT secret (a setting, or a 0600 file in the data directory). A copy of
the database alone does not give anyone's second factor. Secrets stored in plaintext
by older hubs are sealed when the hub starts (`seal_plaintext`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, Unprocessable
from hub.db.engine import Database
from hub.db.models import RecoveryCode, User, utcnow

STEP = 30
DIGITS = 6
WINDOW = 1  # steps either side of now, for clock drift
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


# -- RFC 6238 / RFC 4226 ---------------------------------------------------------


def new_secret() -> str:
    """160 random bits in base32 without padding, as authenticator apps expect."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    return base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))


def hotp(secret: str, counter: int, digits: int = DIGITS) -> str:
    digest = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(secret: str, at: float | None = None) -> str:
    return hotp(secret, int((time.time() if at is None else at) // STEP))


def match_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step a code belongs to (within the window), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = int((time.time() if at is None else at) // STEP)
    for step in range(now - WINDOW, now + WINDOW + 1):
        if hmac.compare_digest(hotp(secret, step), code):
            return step
    return None


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP}
    )
    return f"otpauth://totp/{label}?{query}"


# -- recovery codes ------------------------------------------------------------------


def new_recovery_code() -> str:
    """`xxxx-xxxx-xxxx`: 12 characters of a 31-letter alphabet (about 59 bits)."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def _recovery_hash(code: str) -> str:
    normal = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(normal.encode()).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    return len(code.strip().replace("-", "").replace(" ", "")) == 12


# -- sealing secrets at rest -----------------------------------------------------------

SEALED_LENGTH = 64  # base64url of nonce (12) + the secret's 20 bytes + tag (16)


class SecretBox:
    """Seals TOTP secrets for the database: AES-256-GCM under a key derived (HKDF) from
    a hub secret, bound to the user's id (a sealed secret moved to another account does
    not open). Sealed, a secret fits the column its plaintext had (64 characters)."""

    def __init__(self, master: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"rexec passcode secrets"
        ).derive(master.encode())
        self._aead = AESGCM(key)

    def seal(self, user_id: str, secret: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._aead.encrypt(nonce, _key(secret), user_id.encode())
        return base64.urlsafe_b64encode(sealed).decode()

    def open(self, user_id: str, stored: str) -> str:
        """The secret; one an older hub stored in plaintext is read as it is."""
        if not is_sealed(stored):
            return stored
        raw = base64.urlsafe_b64decode(stored)
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], user_id.encode())
        except InvalidTag:
            raise RuntimeError(
                "a passcode secret does not open: the hub's secret key changed"
            ) from None
        return base64.b32encode(plain).decode().rstrip("=")


def is_sealed(stored: str) -> bool:
    """Sealed values are 64 characters; a plaintext secret (`new_secret`) is 32."""
    return len(stored) == SEALED_LENGTH


# -- the account's passcode ------------------------------------------------------------


class Passcodes:
    def __init__(self, db: Database, issuer: str, box: SecretBox) -> None:
        self.db = db
        self.issuer = issuer
        self.box = box

    async def seal_plaintext(self) -> int:
        """Seal the secrets older hubs stored in plaintext (run at start); how many."""
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(User.id, User.passcode_secret).where(User.passcode_secret.is_not(None))
                )
            ).all()
            plain = [(uid, secret) for uid, secret in rows if secret and not is_sealed(secret)]
            sealed = 0
            for uid, secret in plain:
                try:
                    value = self.box.seal(uid, secret)
                except ValueError:  # not base32: no authenticator could use it anyway
                    continue
                await s.execute(  # unless another hub sealed it meanwhile
                    update(User)
                    .where(User.id == uid, User.passcode_secret == secret)
                    .values(passcode_secret=value)
                )
                sealed += 1
            await s.commit()
        return sealed

    async def begin(self, user_id: str) -> tuple[str, str]:
        """A new secret, pending until confirmed: (secret, otpauth URI)."""
        secret = new_secret()
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            assert user is not None
            if user.passcode_enabled:
                raise Conflict(
                    "A passcode is already enabled; remove it first.", code="passcode_enabled"
                )
            user.passcode_secret = self.box.seal(user_id, secret)
            user.passcode_last_step = None
            await s.commit()
            email = user.email
        return secret, otpauth_uri(secret, email, self.issuer)

    async def confirm(self, user_id: str, code: str) -> list[str]:
        """Turn the pending passcode on with a current code; answer the recovery codes."""
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            assert user is not None
            if user.passcode_enabled:
                raise Conflict("The passcode is already enabled.", code="passcode_enabled")
            if not user.passcode_secret:
                raise Conflict(
                    "Start the set-up first: POST /api/user/passcode with {}.",
                    code="passcode_not_started",
                )
            step = match_step(self.box.open(user_id, user.passcode_secret), code)
            if step is None:
                raise _wrong_code()
            user.passcode_enabled = True
            user.passcode_last_step = step
            codes = await self._replace_codes(s, user_id)
            await s.commit()
        return codes

    async def disable(self, user_id: str, code: str) -> None:
        if not await self.verify(user_id, code):
            raise _wrong_code()
        async with self.db.session() as s:
            await s.execute(
                update(User)
                .where(User.id == user_id)
                .values(passcode_enabled=False, passcode_secret=None, passcode_last_step=None)
            )
            await s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
            await s.commit()

    async def regenerate(self, user_id: str, code: str) -> list[str]:
        """New recovery codes (the old ones stop working), for a current passcode."""
        if not await self.verify(user_id, code):
            raise _wrong_code()
        async with self.db.session() as s:
            codes = await self._replace_codes(s, user_id)
            await s.commit()
        return codes

    async def verify(self, user_id: str, code: str) -> str | None:
        """Spend a code of an enabled passcode: "totp", "recovery_code", or None."""
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            if user is None or not user.passcode_enabled or not user.passcode_secret:
                return None
            if looks_like_recovery_code(code):
                spent = await s.execute(
                    update(RecoveryCode)
                    .where(
                        RecoveryCode.user_id == user_id,
                        RecoveryCode.code_hash == _recovery_hash(code),
                        RecoveryCode.used_at.is_(None),
                    )
                    .values(used_at=utcnow())
                )
                await s.commit()
                return "recovery_code" if spent.rowcount == 1 else None  # type: ignore[attr-defined]
            step = match_step(self.box.open(user_id, user.passcode_secret), code)
            if step is None:
                return None
            # Each step once: of two sign-ins with the same code, one wins.
            won = await s.execute(
                update(User)
                .where(
                    User.id == user_id,
                    (User.passcode_last_step.is_(None)) | (User.passcode_last_step < step),
                )
                .values(passcode_last_step=step)
            )
            await s.commit()
            return "totp" if won.rowcount == 1 else None  # type: ignore[attr-defined]

    async def recovery_codes_left(self, user_id: str) -> int:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(RecoveryCode.id).where(
                    RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
                )
            )
            return len(list(rows))

    @staticmethod
    async def _replace_codes(s: AsyncSession, user_id: str) -> list[str]:
        await s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        s.add_all(RecoveryCode(user_id=user_id, code_hash=_recovery_hash(c)) for c in codes)
        return codes


def _wrong_code() -> Unprocessable:
    return Unprocessable(
        "The code is wrong or was already used; use the current one from your app.",
        code="invalid_passcode",
    )
