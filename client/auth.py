"""Credentials and where they are kept.

A person signs in and holds a short-lived access token plus a refresh token that the
hub rotates on every use; presenting a used refresh token revokes the whole family
(API.md). So a refresh must happen once, not once per caller: within a process the
transport serialises refreshes, and across processes (two `rexec` commands started
together) the store's lock does. A script may instead hold an API token (`rx_...`),
which never refreshes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

REFRESH_LEEWAY = 30.0  # seconds before expiry at which an access token is refreshed early


@dataclass(frozen=True, slots=True)
class Credentials:
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None  # epoch seconds, for the access token
    email: str | None = None

    @property
    def kind(self) -> str:
        """`session` (a sign-in that refreshes) or `token` (a bearer token as given)."""
        return "session" if self.refresh_token else "token"

    def needs_refresh(self, now: float, leeway: float = REFRESH_LEEWAY) -> bool:
        return (
            self.refresh_token is not None
            and self.expires_at is not None
            and now >= self.expires_at - leeway
        )

    @classmethod
    def from_login(
        cls, answer: Mapping[str, Any], now: float, email: str | None = None
    ) -> Credentials:
        """From the answer of `POST /api/login` or `/api/refresh`."""
        expires_in = answer.get("expires_in")
        user = answer.get("user")
        if email is None and isinstance(user, Mapping) and isinstance(user.get("email"), str):
            email = user["email"]
        return cls(
            access_token=str(answer["access_token"]),
            refresh_token=str(answer["refresh_token"]) if answer.get("refresh_token") else None,
            expires_at=now + float(expires_in) if isinstance(expires_in, int | float) else None,
            email=email,
        )

    def with_email(self, email: str | None) -> Credentials:
        return replace(self, email=email)

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "email": self.email,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Credentials | None:
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            return None
        refresh = data.get("refresh_token")
        expires = data.get("expires_at")
        email = data.get("email")
        return cls(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            email=email if isinstance(email, str) else None,
        )


class CredentialStore(Protocol):
    """Where one hub's credentials live. `acquire`/`release` bracket a refresh and may
    block (a file lock): the transport calls `acquire` in a thread."""

    def load(self) -> Credentials | None: ...

    def save(self, credentials: Credentials | None) -> None: ...

    def acquire(self) -> None: ...

    def release(self) -> None: ...


class MemoryStore:
    """Credentials held by this process only."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        self._credentials = credentials

    def load(self) -> Credentials | None:
        return self._credentials

    def save(self, credentials: Credentials | None) -> None:
        self._credentials = credentials

    def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None
