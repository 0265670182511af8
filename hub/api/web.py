"""The web app: its single page, its hashed assets, and who may open browser sockets.

The app (web/, built by scripts/build-web.sh into hub/web/static/) routes on the client,
so every GET outside the API answers index.html. Hashed assets are immutable and cached
for a year; index.html is revalidated on every load so a new build shows at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from common.errors import Forbidden, NotFound
from hub.state import SETTINGS

routes = web.RouteTableDef()
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
# No inline scripts, no eval (WebAssembly only: the recording player's terminal is wasm);
# inline styles stay allowed because xterm.js and Svelte transitions set them.
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "worker-src 'self' blob:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # share links carry their token in the path
    "X-Frame-Options": "DENY",
}
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@routes.get("/assets/{name}")
async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC / "assets" / name
    if not NAME.match(name) or not path.is_file():
        raise NotFound("No such asset.")
    return web.FileResponse(path, headers=ASSET_HEADERS)


# Paths the app never owns (the API and the other hub endpoints answer those themselves)
# are not matched at all, so unknown API calls stay 404 for every method.
@routes.get(r"/{tail:(?!api/|ws/|install|assets/).*}")
async def app_page(request: web.Request) -> web.StreamResponse:
    """index.html for the app's own routes; a top-level file (favicon) as itself."""
    name = request.path.lstrip("/")
    if name and NAME.match(name) and name != "index.html" and (STATIC / name).is_file():
        return web.FileResponse(STATIC / name, headers={"Cache-Control": "public, max-age=3600"})
    page = STATIC / "index.html"
    if not page.is_file():
        return web.Response(
            text="Rexec hub: the web app is not built (scripts/build-web.sh).",
            content_type="text/plain",
        )
    return web.FileResponse(page, headers=PAGE_HEADERS)


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


async def no_sniff(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: no answer (JSON above all) is ever content-sniffed into HTML."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def check_origin(request: web.Request, what: str = "open terminals") -> None:
    """Refuse a browser request made by a page of another site where it would ride on
    the victim's credentials (cross-site WebSocket hijacking; the refresh cookie on
    `/api/refresh` and `/api/logout`). No Origin: not a browser; allowed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    settings = request.app[SETTINGS]
    allowed = {f"{request.scheme}://{request.host}".lower(), f"https://{request.host}".lower()}
    if settings.public_url:
        allowed.add(_origin(settings.public_url))
    allowed.update(_origin(o) for o in settings.allowed_origins)
    if origin.strip().lower() not in allowed:
        raise Forbidden(
            f"This page's origin may not {what} on this hub.", code="origin_not_allowed"
        )
