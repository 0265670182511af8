"""The hub's HTTP server: aiohttp's, except that a request it cannot even parse (a URL
or header past the 8 KiB line limit, too many headers, a malformed request line) gets
API.md's error shape instead of aiohttp's plain text, and is logged as the client's
mistake (INFO) rather than as an ERROR with a traceback.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from common.errors import ApiError, InvalidRequest

log = logging.getLogger("rexec.hub.server")
# The start of a request line or its URL (a header line is `Name: value`, no space).
_REQUEST_LINE = re.compile(rb"^(/|[A-Za-z]+ |https?:)")


class RequestHeaderFieldsTooLarge(ApiError):
    status = 431
    default_code = "headers_too_large"


class UriTooLong(ApiError):
    status = 414
    default_code = "uri_too_long"


def parse_error(exc: BaseException) -> ApiError:
    """What an unparsable request is told. A line too long that starts like a path is
    the request line (its URL); any other is a header."""
    if isinstance(exc, LineTooLong):
        line = exc.args[0] if exc.args else b""
        start = bytes(line) if isinstance(line, bytes | bytearray) else str(line).encode()
        if _REQUEST_LINE.match(start):
            return UriTooLong("The URL is too long (at most 8 KiB).")
        return RequestHeaderFieldsTooLarge("A request header is too large (at most 8 KiB).")
    if isinstance(exc, BadHttpMessage) and "too many headers" in exc.message.lower():
        return RequestHeaderFieldsTooLarge("The request has too many headers.")
    return InvalidRequest("The request is not valid HTTP.")


class _Handler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, BadHttpMessage) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        err = parse_error(exc)
        log.info("refused an unparsable request from %s: %s", request.remote, err.code)
        response = web.json_response(
            err.to_json(), status=err.status, headers={"X-Content-Type-Options": "nosniff"}
        )
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class HubRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer parse errors in the error shape."""

    async def _make_server(self) -> web.Server:
        server: Any = await super()._make_server()
        server.__class__ = _Server  # same state, one overridden factory method
        return server  # type: ignore[no-any-return]
