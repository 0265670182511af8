"""Password hashing (argon2id), opaque token hashing and access JWTs.

Argon2 is deliberately slow (tens of milliseconds of CPU): `hash_password` and
`verify_password` run it on a worker thread, so a burst of sign-ins or share passcode
guesses cannot stall the event loop that serves every other request and socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.errors import Unauthorized

_hasher = PasswordHasher()  # argon2id with the library's current parameters
# A hash to verify against for unknown emails, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("rexec-no-such-user")
ACCESS_AUDIENCE = "rexec-api"
ALGORITHM = "HS256"


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; an unknown account (None) costs the same time."""
    return await asyncio.to_thread(_verify, password_hash, password)


def new_token(prefix: str, nbytes: int = 32) -> str:
    """A random opaque token such as `rx_...`; only its hash is stored."""
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def hash_token(token: str) -> str:
    """Tokens are high-entropy, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_access_token(user_id: str, secret: str, ttl: int, family: str | None = None) -> str:
    """`family` names the sign-in (its refresh-token family), so signing out can end the
    live sockets opened with it."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user_id,
        "aud": ACCESS_AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": secrets.token_hex(8),
    }
    if family:
        claims["fam"] = family
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def token_family(token: str) -> str | None:
    """The sign-in an access token belongs to (read after the token was verified)."""
    try:
        fam = jwt.decode(token, options={"verify_signature": False}).get("fam")
    except jwt.PyJWTError:
        return None
    return fam if isinstance(fam, str) else None


def decode_access_token(token: str, secret: str) -> tuple[str, str | None]:
    """The user id and sign-in family in a valid access token; Unauthorized for
    anything else."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=ACCESS_AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized(
            "The access token has expired; refresh it.", code="token_expired"
        ) from None
    except jwt.PyJWTError:
        raise Unauthorized("The access token is not valid.", code="invalid_token") from None
    sub, fam = claims.get("sub"), claims.get("fam")
    if not isinstance(sub, str):
        raise Unauthorized("The access token is not valid.", code="invalid_token")
    return sub, fam if isinstance(fam, str) else None
