"""The public site beside the app: the docs at `/docs/` and the plans at `/pricing`.

The docs are the MkDocs build of docs/ (scripts/build-docs.sh writes hub/web/docs/, as
build-web.sh writes the app); `/pricing` is rendered here, on the server, from the same
`plans_json()` that `GET /api/billing/plans` answers, so the page and the API cannot
disagree and the page needs no script.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from aiohttp import web

from common.errors import NotFound
from hub.state import BILLING

routes = web.RouteTableDef()
DOCS = Path(__file__).resolve().parent.parent / "web" / "docs"
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
PRICING_HEADERS = {
    **HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


@routes.get("/docs")
async def docs_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/docs/")


@routes.get("/docs/{path:.*}")
async def docs(request: web.Request) -> web.StreamResponse:
    """A file of the built docs site; a directory answers its index.html."""
    root = DOCS.resolve()
    if not (root / "index.html").is_file():
        return web.Response(
            status=404,
            text="Rexec hub: the docs are not built (scripts/build-docs.sh).",
            content_type="text/plain",
        )
    wanted = (root / request.match_info["path"]).resolve()
    if wanted != root and root not in wanted.parents:
        raise NotFound("No such page.")
    if wanted.is_dir():
        if not request.path.endswith("/"):
            raise web.HTTPMovedPermanently(request.path + "/")
        wanted = wanted / "index.html"
    if not wanted.is_file():
        raise NotFound("No such page.")
    return web.FileResponse(wanted, headers=HEADERS)


def _limit(value: Any, unit: str = "") -> str:
    return "unlimited" if value is None else f"{value}{unit}"


def _plan(plan: dict[str, Any]) -> str:
    cents = int(plan.get("price_cents") or 0)
    price = "Free" if cents == 0 else f"${cents / 100:,.2f} / {plan.get('interval') or 'month'}"
    limits = plan.get("limits") or {}
    rows = [
        ("Containers running", _limit(limits.get("containers"))),
        ("Agents (servers)", _limit(limits.get("agents"))),
        ("Terminal minutes a month", _limit(limits.get("session_minutes_per_month"))),
        ("Recordings kept", _limit(limits.get("recording_retention_days"), " days")),
    ]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return (
        f'<section class="plan" id="plan-{html.escape(str(plan.get("id")))}">'
        f"<h2>{html.escape(str(plan.get('name')))}</h2>"
        f'<p class="price">{html.escape(price)}</p><table>{cells}</table></section>'
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pricing - Rexec</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }}
.plans {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.plan {{ border: 1px solid #ccc; border-radius: 8px; padding: 1rem; flex: 1 1 14rem; }}
.price {{ font-size: 1.4rem; font-weight: 600; }}
th {{ text-align: left; font-weight: normal; padding-right: 1rem; }}
</style></head>
<body><nav><a href="/">Rexec</a> · <a href="/docs/">Docs</a> · <a href="/pricing">Pricing</a></nav>
<h1>Pricing</h1>
<p>Terminals, sandboxes and servers as a service. Every plan has the web terminal, the CLI,
the SDKs, the SSH gateway and supervised AI execution.</p>
<div class="plans">{plans}</div>
<p>Plans as JSON: <a href="/api/billing/plans">/api/billing/plans</a>.
Subscribe from your account's billing page once signed in.</p>
</body></html>
"""


@routes.get("/pricing")
async def pricing(request: web.Request) -> web.Response:
    plans = request.app[BILLING].plans_json()
    body = PAGE.format(plans="".join(_plan(p) for p in plans))
    return web.Response(text=body, content_type="text/html", headers=PRICING_HEADERS)
