"""Opaque, prefixed identifiers (API.md: `usr_`, `agt_`, `ses_`, ...)."""

from __future__ import annotations

import secrets
from typing import Literal

Prefix = Literal["usr", "ctr", "agt", "ses", "apr", "tok", "key", "shr", "atk", "evt"]


def new_id(prefix: Prefix) -> str:
    """A new id: the type prefix and 16 random bytes in base32-ish hex."""
    return f"{prefix}_{secrets.token_hex(10)}"


def has_prefix(value: str, prefix: Prefix) -> bool:
    return value.startswith(prefix + "_") and len(value) > len(prefix) + 1
