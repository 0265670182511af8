"""What the SDK raises: the hub's API.md errors as typed exceptions, and its own.

    RexecError (common)
    ├── ApiError (common)              the hub answered in API.md's error shape
    │   ├── InvalidRequest ... Unavailable (common, chosen by HTTP status)
    │   │   └── Unauthorized
    │   │       ├── InvalidCredentials 401 invalid_credentials
    │   │       └── PasscodeRequired   401 passcode_required
    │   ├── ServerError                any other 5xx
    │   └── OtherStatus                a status API.md does not name
    └── ClientError                    raised by this side, no API answer behind it
        ├── HubUnreachable             no connection to the hub (or it timed out)
        ├── NotSignedIn                no credentials for this hub
        ├── UnexpectedAnswer           the hub answered something that is not API.md
        └── ConnectionLost             a terminal socket closed before its exit

Every `ApiError` keeps the hub's `code`, `message` and `details`. Errors on a terminal
socket (an `{"type":"error"}` frame, a close code 4000 + status) map to the same classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.errors import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PlanLimitReached,
    RateLimited,
    RexecError,
    Unauthorized,
    Unavailable,
    Unprocessable,
)

__all__ = [
    "ApiError",
    "ClientError",
    "Conflict",
    "ConnectionLost",
    "Forbidden",
    "HubUnreachable",
    "InvalidCredentials",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "NotSignedIn",
    "OtherStatus",
    "PasscodeRequired",
    "PayloadTooLarge",
    "PlanLimitReached",
    "RateLimited",
    "RexecError",
    "ServerError",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "Unprocessable",
    "error_from_answer",
    "error_from_close",
]


class InvalidCredentials(Unauthorized):
    default_code = "invalid_credentials"


class PasscodeRequired(Unauthorized):
    """The account has a passcode (TOTP) and none, or a wrong one, was given."""

    default_code = "passcode_required"


class ServerError(ApiError):
    status = 500
    default_code = "internal_error"


class OtherStatus(ApiError):
    """An error status API.md does not name; `http_status` says which."""

    def __init__(
        self, message: str, *, http_status: int, code: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message, code=code or "http_error", details=details)
        self.http_status = http_status


class ClientError(RexecError):
    """Raised by the client itself."""

    default_code = "client_error"


class HubUnreachable(ClientError):
    default_code = "hub_unreachable"


class NotSignedIn(ClientError):
    default_code = "not_signed_in"


class UnexpectedAnswer(ClientError):
    default_code = "unexpected_answer"


class ConnectionLost(ClientError):
    default_code = "connection_lost"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    402: PlanLimitReached,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    503: Unavailable,
}
_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_credentials": InvalidCredentials,
    "passcode_required": PasscodeRequired,
}


def error_from_answer(
    status: int, body: Any, *, retry_after: str | None = None, reason: str = ""
) -> ApiError:
    """The typed error for an HTTP error answer (its parsed JSON body, or anything else)."""
    code: str | None = None
    message = ""
    details: Any = None
    err = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(err, Mapping):
        raw_code, raw_message = err.get("code"), err.get("message")
        code = raw_code if isinstance(raw_code, str) else None
        message = raw_message if isinstance(raw_message, str) else ""
        details = err.get("details")
    message = message or f"The hub answered HTTP {status} {reason}".rstrip() + "."
    if status == 429:
        limited = RateLimited(message, retry_after=_seconds(retry_after))
        if code:
            limited.code = code
        return limited
    cls = _BY_CODE.get(code or "") if status == 401 else None
    cls = cls or _BY_STATUS.get(status)
    if cls is not None:
        return cls(message, code=code, details=details if isinstance(details, dict) else None)
    if status >= 500:
        return ServerError(message, code=code)
    return OtherStatus(message, http_status=status, code=code, details=details)


def error_from_close(close_code: int | None, code: str | None, message: str | None) -> RexecError:
    """The typed error for a terminal socket closed with 4000 + status (or otherwise)."""
    if close_code == 4008:
        return ConnectionLost("The hub dropped this client: it did not keep up with the output.")
    if close_code is not None and 4000 <= close_code < 5000:
        body = {"error": {"code": code, "message": message}} if code or message else None
        return error_from_answer(close_code - 4000, body)
    if close_code == 1001:
        return ConnectionLost(message or "The hub is shutting down; the session may be rejoined.")
    if close_code == 1012:  # a graceful restart: another hub (or this one, back) takes over
        return ConnectionLost(message or "The hub is restarting; rejoin the session to go on.")
    return ConnectionLost(message or f"The terminal connection closed (code {close_code}).")


def _seconds(value: str | None) -> int:
    try:
        return max(0, int(value or "0"))
    except ValueError:
        return 0
