"""The terminal attach API: a session on `WS /ws/terminal/{id}` as an async iterator of
output bytes, with `send`, `resize` and the exit code.

The control messages of API.md are decoded into frozen dataclasses by `decode_event`,
which does no I/O; `Terminal` only moves frames. A refusal before the upgrade (plain
HTTP in API.md's error shape) and one after it (`{"type":"error"}` then close 4000 +
status) raise the same typed errors as the REST calls.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypedDict, Unpack
from urllib.parse import quote, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from client.errors import (
    ConnectionLost,
    RexecError,
    UnexpectedAnswer,
    error_from_answer,
    error_from_close,
)
from client.transport import Transport, reach_error, ws_base

MAX_MESSAGE = 16 << 20
OPEN_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class SessionStarted:
    id: str
    role: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Participants:
    participants: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Exited:
    code: int


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """Any other control message (approval requests, newer types): kept as sent."""

    type: str
    data: Mapping[str, Any]


Event = SessionStarted | Participants | Exited | ErrorMessage | OtherMessage


def decode_event(text: str) -> Event:
    """One text frame from the hub as a typed event."""
    try:
        data = json.loads(text)
    except ValueError:
        raise UnexpectedAnswer("The hub sent a control message that is not JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise UnexpectedAnswer("The hub sent a control message without a type.")
    kind = data["type"]
    if kind == "session":
        return SessionStarted(id=str(data.get("id", "")), role=str(data.get("role", "")), raw=data)
    if kind == "participants":
        people = data.get("participants")
        return Participants(tuple(people) if isinstance(people, list) else ())
    if kind == "exit":
        code = data.get("code")
        return Exited(code if isinstance(code, int) and not isinstance(code, bool) else -1)
    if kind == "error":
        return ErrorMessage(code=str(data.get("code", "")), message=str(data.get("message", "")))
    return OtherMessage(type=kind, data=data)


def resize_message(cols: int, rows: int) -> str:
    return json.dumps({"type": "resize", "cols": cols, "rows": rows})


class Where(TypedDict, total=False):
    """Which session a terminal opens or joins, and its first size (API.md's query)."""

    cols: int | None
    rows: int | None
    command: str | None
    session: str | None
    offset: int | None  # with `session`: resume after this output byte (not the screen)
    share: str | None
    passcode: str | None


def terminal_path(target: str, **where: Unpack[Where]) -> str:
    query = {k: str(v) for k, v in where.items() if v is not None and v != ""}
    encoded = urlencode(query)
    return f"/ws/terminal/{quote(target, safe='')}" + (f"?{encoded}" if encoded else "")


def socket_protocols(passcode: str | None) -> list[str]:
    """The subprotocols a terminal socket offers: `rexec`, and a share's passcode as
    `rexec.passcode.<base64url>` (the hub's docs/sessions.md, "Credentials")."""
    offered = ["rexec"]
    if passcode:
        encoded = base64.urlsafe_b64encode(passcode.encode()).decode().rstrip("=")
        offered.append(f"rexec.passcode.{encoded}")
    return offered


class Terminal:
    """An attached terminal session. Iterate for output; the iteration ends at the
    program's exit (`exit_code`) and raises a typed error if the hub ends it otherwise."""

    def __init__(
        self,
        ws: ClientConnection,
        started: SessionStarted,
        target: str,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self._ws = ws
        self.started = started
        self.target = target
        self.on_event = on_event
        self.exit_code: int | None = None
        self.error: ErrorMessage | None = None
        self.participants: tuple[Any, ...] = ()
        self._done = False
        start = started.raw.get("offset")
        # The offset of the next output byte: leave, then resume from it with
        # `session=..., offset=...` and the hub sends only what came after.
        self.offset: int | None = start if isinstance(start, int) else None

    @property
    def session_id(self) -> str:
        return self.started.id

    @property
    def role(self) -> str:
        return self.started.role

    @property
    def finished(self) -> bool:
        return self._done

    async def send(self, data: bytes) -> None:
        """Keystrokes (dropped by the hub when this client is a viewer)."""
        if not data:
            return
        try:
            await self._ws.send(data)
        except ConnectionClosed:
            if self.exit_code is None:
                raise self._closed_error() from None

    async def resize(self, cols: int, rows: int) -> None:
        try:
            await self._ws.send(resize_message(cols, rows))
        except ConnectionClosed:
            if self.exit_code is None:
                raise self._closed_error() from None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            try:
                message = await self._ws.recv()
            except ConnectionClosed:
                self._done = True
                if self.exit_code is not None or self._ws.close_code == 1000:
                    break
                raise self._closed_error() from None
            if isinstance(message, bytes):
                if self.offset is not None:
                    self.offset += len(message)
                return message
            self._handle(decode_event(message))
        raise StopAsyncIteration

    async def wait(self) -> int | None:
        """Discard output until the program exits; its exit code."""
        async for _ in self:
            pass
        return self.exit_code

    async def close(self) -> None:
        """Leave the session (it goes on on the hub, within its grace period)."""
        self._done = True
        await self._ws.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _handle(self, event: Event) -> None:
        if isinstance(event, Exited):
            self.exit_code = event.code
            self._done = True
        elif isinstance(event, ErrorMessage):
            self.error = event
        elif isinstance(event, Participants):
            self.participants = event.participants
        elif isinstance(event, OtherMessage) and event.type == "skipped":
            skipped = event.data.get("bytes")
            if self.offset is not None and isinstance(skipped, int):
                self.offset += skipped  # dropped for this client, not owed to it
        if self.on_event is not None:
            self.on_event(event)

    def _closed_error(self) -> RexecError:
        err = self.error
        return error_from_close(
            self._ws.close_code, err.code if err else None, err.message if err else None
        )


async def open_terminal(
    transport: Transport,
    target: str,
    on_event: Callable[[Event], None] | None = None,
    **where: Unpack[Where],
) -> Terminal:
    """Open (or join) a session and wait for its `{"type":"session"}` message."""
    # Credentials never go in the URL (URLs end up in logs): the token in the
    # Authorization header, a share's passcode in an offered subprotocol.
    passcode = where.pop("passcode", None)
    url = ws_base(transport.hub) + terminal_path(target, **where)
    protocols = [Subprotocol(p) for p in socket_protocols(passcode)]

    async def dial(token: str | None) -> Terminal:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                subprotocols=protocols,
                compression=None,  # terminal streams: deflate costs far more than it saves
                max_size=MAX_MESSAGE,
                open_timeout=OPEN_TIMEOUT,
                user_agent_header="rexec-python",
            )
        except InvalidStatus as exc:
            body: Any = exc.response.body
            with contextlib.suppress(ValueError):
                body = json.loads(body or b"")
            raise error_from_answer(exc.response.status_code, body) from None
        except InvalidHandshake as exc:
            raise UnexpectedAnswer(f"The terminal handshake failed: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise reach_error(transport.hub, exc) from None
        return await _first_message(ws, target, on_event)

    if where.get("share") is not None and transport.credentials is None:
        return await dial(None)
    return await transport.authorized(dial)


async def _first_message(
    ws: ClientConnection, target: str, on_event: Callable[[Event], None] | None
) -> Terminal:
    error: ErrorMessage | None = None
    try:
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                raise UnexpectedAnswer("The hub sent output before the session message.")
            event = decode_event(message)
            if isinstance(event, SessionStarted):
                if on_event is not None:
                    on_event(event)
                return Terminal(ws, event, target, on_event)
            if isinstance(event, ErrorMessage):
                error = event
    except ConnectionClosed:
        raise error_from_close(
            ws.close_code, error.code if error else None, error.message if error else None
        ) from None
    except BaseException:
        await ws.close()
        raise


__all__ = [
    "ConnectionLost",
    "ErrorMessage",
    "Event",
    "Exited",
    "OtherMessage",
    "Participants",
    "SessionStarted",
    "Terminal",
    "decode_event",
    "open_terminal",
    "resize_message",
    "terminal_path",
]
