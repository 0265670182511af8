"""Users' SSH public keys: parsing, fingerprints and storage (API.md: /api/user/keys)."""

from __future__ import annotations

import builtins

import asyncssh
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from common.errors import Conflict, InvalidRequest, NotFound
from common.ids import new_id
from hub.db.engine import Database
from hub.db.models import SshKey, utcnow

MAX_KEY_TEXT = 16 << 10


def parse_public_key(text: str) -> asyncssh.SSHKey:
    """One OpenSSH public key line (`ssh-ed25519 AAAA... comment`); 400 otherwise."""
    line = text.strip()
    if not line or "\n" in line or len(line) > MAX_KEY_TEXT:
        raise InvalidRequest(
            "public_key must be one OpenSSH public key line, like `ssh-ed25519 AAAA... you@host`.",
            details={"field": "public_key"},
        )
    try:
        return asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError, TypeError):
        raise InvalidRequest(
            "public_key is not a valid OpenSSH public key.", details={"field": "public_key"}
        ) from None


def fingerprint(key: asyncssh.SSHKey) -> str:
    """`SHA256:...`, as `ssh-keygen -lf` prints it."""
    return key.get_fingerprint("sha256")


class SshKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, user_id: str, name: str, public_key: str, kind: str = "agent") -> SshKey:
        key = parse_public_key(public_key)
        canonical = key.export_public_key("openssh").decode().strip()
        row = SshKey(
            id=new_id("key"),
            user_id=user_id,
            name=name,
            algorithm=key.get_algorithm(),
            public_key=canonical,
            fingerprint=fingerprint(key),
            kind=kind,
            created_at=utcnow(),
        )
        async with self.db.session() as s:
            # Per account: whether another account has this key is nobody's business.
            existing = await s.scalar(
                select(SshKey).where(
                    SshKey.user_id == user_id, SshKey.fingerprint == row.fingerprint
                )
            )
            if existing is not None:
                raise Conflict("You have registered this key already.", code="key_exists")
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                raise Conflict("You have registered this key already.", code="key_exists") from None
        return row

    async def list(self, user_id: str) -> list[SshKey]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(SshKey)
                .where(SshKey.user_id == user_id)
                .order_by(SshKey.created_at.desc(), SshKey.id.desc())
            )
            return list(rows)

    async def get(self, user_id: str, key_id: str) -> SshKey:
        missing = NotFound("No such SSH key.", code="key_not_found")
        return await self.db.owned(SshKey, "key", key_id, user_id, missing)

    async def delete(self, user_id: str, key_id: str) -> SshKey:
        row = await self.get(user_id, key_id)
        async with self.db.session() as s:
            found = await s.get(SshKey, row.id)
            if found is not None:
                await s.delete(found)
                await s.commit()
        return row

    async def owners_of(self, key: asyncssh.SSHKey) -> builtins.list[SshKey]:
        """The stored keys matching one offered by an SSH client: one per account that
        registered it (the gateway picks by the target)."""
        async with self.db.session() as s:
            rows = await s.scalars(
                select(SshKey).where(SshKey.fingerprint == fingerprint(key)).order_by(SshKey.id)
            )
            return list(rows)

    async def used(self, key_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(SshKey).where(SshKey.id == key_id).values(last_used_at=utcnow()))
            await s.commit()
