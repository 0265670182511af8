"""HTTP to the hub: JSON in and out, API.md errors raised as typed exceptions, and the
access token kept fresh.

The refresh rule: refresh early when the stored expiry is near, and once more when the
hub answers 401 `token_expired` or `invalid_token` to a token we could refresh. Refreshes
are serialised (an asyncio lock in this process, the store's lock across processes) and
a refresh that finds the store already holding newer credentials adopts them, because
presenting a used refresh token would sign the user out everywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from client.auth import Credentials, CredentialStore, MemoryStore
from client.errors import (
    ApiError,
    HubUnreachable,
    NotSignedIn,
    Unauthorized,
    UnexpectedAnswer,
    error_from_answer,
)

T = TypeVar("T")
REFRESHABLE = frozenset({"token_expired", "invalid_token"})
DEFAULT_TIMEOUT = 60.0
USER_AGENT = "rexec-python"


def normalize_hub(url: str) -> str:
    """`host:8080` -> `http://host:8080`; no trailing slash, no path."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not a hub URL: {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def ws_base(hub: str) -> str:
    parts = urlsplit(hub)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


def reach_error(hub: str, exc: BaseException) -> HubUnreachable:
    """One line saying why the hub could not be reached."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return HubUnreachable(f"The hub at {hub} did not answer in time.")
    errno = getattr(getattr(exc, "os_error", None), "errno", None) or getattr(exc, "errno", None)
    reason = os.strerror(errno) if isinstance(errno, int) else str(exc) or type(exc).__name__
    return HubUnreachable(f"Cannot reach the hub at {hub}: {reason}.")


class Answer:
    """A finished HTTP exchange."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, body: Any, headers: Mapping[str, str], reason: str) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.reason = reason

    def error(self) -> ApiError:
        return error_from_answer(
            self.status, self.body, retry_after=self.headers.get("Retry-After"), reason=self.reason
        )


class Transport:
    """One hub, one aiohttp session, the credentials and their refresh."""

    def __init__(
        self,
        hub: str,
        *,
        store: CredentialStore | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = normalize_hub(hub)
        self.store: CredentialStore = store if store is not None else MemoryStore()
        self.timeout = timeout
        self._clock = clock
        self._credentials = self.store.load()
        self._refresh_lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    # -- credentials -----------------------------------------------------------

    @property
    def credentials(self) -> Credentials | None:
        return self._credentials

    def set_credentials(self, credentials: Credentials | None) -> None:
        self._credentials = credentials
        self.store.save(credentials)

    async def access_token(self) -> str:
        """A bearer token good for now, refreshed first if it is about to expire."""
        creds = self._credentials
        if creds is None:
            raise NotSignedIn(f"Not signed in to {self.hub}.")
        if creds.needs_refresh(self._clock()):
            creds = await self.refresh(creds)
        return creds.access_token

    async def refresh(self, stale: Credentials) -> Credentials:
        """Trade `stale`'s refresh token for new credentials, exactly once."""
        async with self._refresh_lock:
            current = self._credentials
            if current is not None and current != stale:
                return current  # refreshed by another caller while we waited
            await asyncio.to_thread(self.store.acquire)
            try:
                latest = self.store.load()
                if latest is not None and latest != stale:
                    self._credentials = latest  # refreshed by another process
                    return latest
                if not stale.refresh_token:
                    raise Unauthorized("The token was refused.", code="invalid_token")
                answer = await self._send(
                    "POST", "/api/refresh", {"refresh_token": stale.refresh_token}, None, None
                )
                if answer.status != 200:
                    err = answer.error()
                    if isinstance(err, Unauthorized):
                        raise Unauthorized(
                            f"The sign-in has ended ({err.message.rstrip('.')}); sign in again.",
                            code=err.code,
                        )
                    raise err
                fresh = Credentials.from_login(
                    _object(answer.body), self._clock(), email=stale.email
                )
                self.set_credentials(fresh)
                return fresh
            finally:
                self.store.release()

    async def authorized(self, call: Callable[[str], Awaitable[T]]) -> T:
        """Run `call(token)`; on a 401 that a refresh can cure, refresh and run it again."""
        token = await self.access_token()
        used = self._credentials
        try:
            return await call(token)
        except Unauthorized as err:
            if used is None or not used.refresh_token or err.code not in REFRESHABLE:
                raise
        fresh = await self.refresh(used)
        return await call(fresh.access_token)

    # -- HTTP ----------------------------------------------------------------------

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        params: Mapping[str, str] | None,
        token: str | None,
        limit: float | None = None,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self.http().request(
                method,
                self.hub + path,
                data=data,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=limit or self.timeout),
            ) as resp:
                raw = await resp.read()
                return Answer(resp.status, _decode(raw), resp.headers, resp.reason or "")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise reach_error(self.hub, exc) from None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        auth: bool = True,
        limit: float | None = None,
    ) -> Any:
        """The parsed JSON answer of a 2xx (None for 204); an `ApiError` otherwise."""

        async def call(token: str | None) -> Any:
            answer = await self._send(method, path, body, params, token, limit)
            if answer.status >= 400:
                raise answer.error()
            if answer.status != 204 and isinstance(answer.body, bytes):
                raise UnexpectedAnswer(
                    f"The hub's answer to {method} {path} is not JSON (HTTP {answer.status})."
                )
            return answer.body

        if not auth:
            return await call(None)
        return await self.authorized(call)

    async def download(
        self,
        path: str,
        write: Callable[[bytes], None],
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """Stream a binary answer into `write`; the number of bytes."""

        async def call(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            try:
                async with self.http().get(
                    self.hub + path,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=self.timeout),
                ) as resp:
                    if resp.status >= 400:
                        answer = Answer(
                            resp.status, _decode(await resp.read()), resp.headers, resp.reason or ""
                        )
                        raise answer.error()
                    total = resp.content_length
                    done = 0
                    async for chunk in resp.content.iter_chunked(64 << 10):
                        write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                    return done
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise reach_error(self.hub, exc) from None

        return await self.authorized(call)


def _decode(raw: bytes) -> Any:
    """JSON when it parses; the bytes as they are otherwise; None when empty."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise UnexpectedAnswer("The hub's answer is not a JSON object.")
    return body
