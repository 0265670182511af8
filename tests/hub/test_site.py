"""The docs site at /docs/ and the plans at /pricing (hub/api/site.py): every link of
every page answers, anchors exist, the reference covers the API, and both pages load in
headless Chromium without a failed request."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import async_playwright
from yarl import URL

from tests.support import ROOT, Api

pytestmark = pytest.mark.backend_independent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
MAX_PAGES = 400


class Links(HTMLParser):
    """Every link and resource a page refers to, and the ids it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        for name in ("href", "src"):
            ref = values.get(name)
            if ref and tag in ("a", "link", "script", "img"):
                self.refs.append(ref)


@pytest.fixture(scope="module")
def built_docs() -> Path:
    """The site as scripts/test.sh builds it (built here when missing)."""
    site = ROOT / "hub" / "web" / "docs"
    if not (site / "index.html").is_file():
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "mkdocs"), "build", "--strict", "--quiet"],
            cwd=ROOT,
            check=True,
            timeout=300,
        )
    return site


async def crawl(http: aiohttp.ClientSession, base: str) -> tuple[set[str], list[str]]:
    """Every page reachable from /docs/ and /pricing on this hub; the broken links."""
    todo, seen, pages = ["/docs/", "/pricing"], set(), set()
    ids: dict[str, set[str]] = {}
    anchors: list[tuple[str, str, str]] = []
    broken: list[str] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        assert len(seen) < MAX_PAGES, "the site is larger than this check expects"
        async with http.get(base + path, allow_redirects=True) as resp:
            if resp.status != 200:
                broken.append(f"{path}: {resp.status}")
                continue
            if "text/html" not in resp.headers.get("Content-Type", ""):
                continue
            parser = Links()
            parser.feed(await resp.text())
        pages.add(path)
        ids[path] = parser.ids
        for ref in parser.refs:
            url, fragment = urldefrag(urljoin(base + path, ref))
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or parts.netloc != urlsplit(base).netloc:
                continue  # another site: this machine reaches none
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if fragment and target.startswith("/docs/"):
                anchors.append((path, target, fragment))
            if target not in seen:
                todo.append(target)
    for page, target, fragment in anchors:
        if target in ids and fragment not in ids[target]:
            broken.append(f"{page} -> {target}#{fragment}: no such anchor")
    return pages, broken


async def test_docs_and_pricing_have_no_broken_links(
    built_docs: Path, hub_server: TestServer, api: Api
) -> None:
    base = str(hub_server.make_url("")).rstrip("/")
    pages, broken = await crawl(api.http, base)
    assert not broken, "\n".join(broken)
    for page in ("/docs/", "/docs/reference/", "/docs/sdks/", "/docs/use-cases/", "/pricing"):
        assert page in pages, sorted(pages)
    assert len(pages) > 20
    # The reference is the OpenAPI document rendered: every operation is in it.
    doc = await api.ok("GET", "/api/openapi.json")
    async with api.http.get(base + "/docs/reference/") as resp:
        reference = await resp.text()
    for path, ops in doc["paths"].items():
        for method in ops:
            assert f"{method.upper()} {path}".replace("{", "").replace("}", "") in (
                reference.replace("{", "").replace("}", "")
            ), (method, path)
    # Pricing shows what the API answers.
    plans = (await api.ok("GET", "/api/billing/plans"))["plans"]
    async with api.http.get(base + "/pricing") as resp:
        page = await resp.text()
    assert plans and all(f'id="plan-{p["id"]}"' in page and p["name"] in page for p in plans)
    # Outside the site: answers in the API's shape, never a file outside the build.
    for bad in ("/docs/nope/", "/docs/../../pyproject.toml", "/docs/%2e%2e/%2e%2e/app.py"):
        async with api.http.get(URL(base + bad, encoded=True)) as resp:  # as sent, not cleaned
            assert resp.status == 404, (bad, resp.status)


async def test_docs_and_pricing_load_in_chromium(
    built_docs: Path, hub_server: TestServer, api: Api
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test.sh installs it")
    base = str(hub_server.make_url("")).rstrip("/")
    plans = (await api.ok("GET", "/api/billing/plans"))["plans"]
    failed: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            page.on("requestfailed", lambda r: failed.append(f"{r.url} failed"))
            page.on(
                "response",
                lambda r: failed.append(f"{r.url} {r.status}") if r.status >= 400 else None,
            )
            await page.goto(base + "/docs/", wait_until="load")
            assert "Rexec" in await page.title()
            await page.click("text=Use cases")
            await page.wait_for_url("**/docs/use-cases/", timeout=20_000)
            await page.wait_for_selector("h2#interviews", timeout=20_000)
            await page.goto(base + "/pricing", wait_until="load")
            for plan in plans:
                await page.wait_for_selector(f"#plan-{plan['id']}", timeout=20_000)
            await page.click("text=Docs")
            await page.wait_for_url("**/docs/", timeout=20_000)
        finally:
            await browser.close()
    assert not failed, failed
