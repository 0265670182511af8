"""How an agent proves itself: a short-lived JWT signed with its own Ed25519 key.

The hub keeps only the public key. A proof names the agent (`sub`), the hub audience,
and lives at most a couple of minutes; it is single use (its `jti` is remembered until it
expires), so a proof copied off the wire cannot open a second link.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.errors import Unauthorized

AUDIENCE = "rexec-hub:agent"
LEEWAY = 5  # seconds of clock skew a proof's `exp` is allowed


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the agent key is not an Ed25519 key")
    return key


def public_openssh(key: Ed25519PrivateKey) -> str:
    """The public key in OpenSSH form (`ssh-ed25519 AAAA...`)."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def load_public(text: str) -> Ed25519PublicKey:
    """Parse an OpenSSH Ed25519 public key; ValueError for anything else."""
    try:
        key = serialization.load_ssh_public_key(text.strip().encode())
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"not an OpenSSH public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the agent key must be Ed25519")
    return key


def make_proof(agent_id: str, key: Ed25519PrivateKey, ttl: int = 60) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": agent_id,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, key, algorithm="EdDSA")


def unverified_agent_id(token: str) -> str:
    """The agent id a proof claims, to look up the key that must have signed it."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthorized("Malformed agent proof.", code="invalid_token") from None
    sub = claims.get("sub")
    if not isinstance(sub, str):
        raise Unauthorized("Malformed agent proof.", code="invalid_token")
    return sub


def verify_proof(token: str, public_key: str, max_age: int) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            load_public(public_key),
            algorithms=["EdDSA"],
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "sub", "aud", "jti"]},
            leeway=LEEWAY,
        )
    except (jwt.PyJWTError, ValueError):
        raise Unauthorized("The agent proof does not verify.", code="invalid_token") from None
    if claims["exp"] - claims["iat"] > max_age:
        raise Unauthorized("The agent proof lives too long.", code="invalid_token")
    # Single use: the hub remembers the jti until `exp` (every agent has always sent one).
    if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= 64:
        raise Unauthorized("Malformed agent proof.", code="invalid_token")
    return claims
