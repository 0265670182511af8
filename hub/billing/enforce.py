"""Plan limits at entry points whose handlers belong to other parts of the hub.

Opening a terminal session (`WS /ws/terminal/{id}` without `?session=` or `?share=`)
is refused with 402 before the upgrade once the month's session minutes are spent.
The SSH gateway calls `check_session_minutes` the same way before it opens one.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.http import Handler, require_principal
from hub.billing.plans import check_session_minutes
from hub.state import DB, SETTINGS

TERMINAL = "/ws/terminal/"


@web.middleware
async def plan_limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.path.startswith(TERMINAL)
        and request.method == "GET"
        and not request.query.get("session")
        and not request.query.get("share")
    ):
        principal = await require_principal(request, allow_query=True)
        await check_session_minutes(request.app[DB], request.app[SETTINGS], principal.user.id)
    return await handler(request)
