"""One error tree for all of Rexec.

    RexecError                    (status 500, close 1011)
    ├── ProtocolError             agent-hub wire violations
    │   ├── LocalProtocolError    we were about to send something invalid
    │   └── RemoteProtocolError   the peer sent something invalid
    └── ApiError                  errors that become API.md's error shape
        ├── InvalidRequest        400 invalid_request (with details)
        ├── Unauthorized          401
        ├── Forbidden             403
        ├── NotFound              404
        ├── Conflict              409
        ├── PayloadTooLarge       413
        ├── Unprocessable         422
        ├── PlanLimitReached      402
        └── RateLimited           429 (with retry_after)

Each error carries its HTTP status and the WebSocket close code derived from it
(4000 + status), so the hub turns any of them into a response in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RexecError(Exception):
    """Root of every error Rexec raises on purpose."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    @property
    def close_code(self) -> int:
        """WebSocket close code: 4000 + HTTP status, per API.md."""
        return 4000 + self.status


class ProtocolError(RexecError):
    """The agent-hub protocol was violated; the link must be closed."""

    status = 400
    default_code = "protocol_error"


class LocalProtocolError(ProtocolError):
    """This side tried to send a frame that is invalid in the current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent a malformed frame or a frame invalid in the current state."""


class ApiError(RexecError):
    """An error the public API reports in the shape of API.md."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidRequest(ApiError):
    status = 400
    default_code = "invalid_request"


class Unauthorized(ApiError):
    status = 401
    default_code = "unauthorized"


class PlanLimitReached(ApiError):
    status = 402
    default_code = "plan_limit_reached"


class Forbidden(ApiError):
    status = 403
    default_code = "forbidden"


class NotFound(ApiError):
    status = 404
    default_code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    default_code = "method_not_allowed"


class Conflict(ApiError):
    status = 409
    default_code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    default_code = "payload_too_large"


class Unprocessable(ApiError):
    status = 422
    default_code = "unprocessable"


class RateLimited(ApiError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ApiError):
    status = 503
    default_code = "unavailable"
