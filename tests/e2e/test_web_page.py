"""Acceptance: headless Chromium opens the hub's page, signs in and uses a terminal."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.e2e.conftest import RunningAgent
from tests.support import ROOT, Api, Hub

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test.sh installs it")
    if not (ROOT / "hub/web/static/vendor/xterm.js").exists():
        pytest.fail("xterm.js is not vendored: scripts/test.sh runs scripts/build-web.sh")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        await b.close()


async def test_sign_in_and_run_a_command(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = await page.goto(hub.url + "/")
    assert (
        response is not None and "default-src 'self'" in response.headers["content-security-policy"]
    )
    await page.fill("#login-email", "owner@example.com")
    await page.fill("#login-password", "correct horse 1")
    await page.click("#login-btn")
    row = page.locator("#agents-body tr", has_text="online")
    await expect(row).to_have_count(1)
    await row.get_by_role("button").click()
    rows = page.locator("#terminal .xterm-rows")
    await expect(rows).to_contain_text(re.compile(r"[$#]"), timeout=10_000)  # the prompt
    await page.locator("#terminal").click()
    await page.keyboard.type("echo $((6*7))\n")
    await expect(rows).to_contain_text("42", timeout=10_000)
    await page.keyboard.type("exit 3\n")
    await expect(page.locator("#terminal")).to_contain_text("exited with code 3", timeout=10_000)
    assert errors == []
    storage = await page.evaluate("() => [localStorage.length, sessionStorage.length]")
    assert storage == [0, 0]
