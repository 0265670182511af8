"""The person in the loop is a real browser: the web app (headless Chromium through
Playwright) shows the AI's held command on the terminal page, and its Approve button
runs it in the terminal the person is looking at."""

from __future__ import annotations

import asyncio

import aiohttp
from playwright.async_api import Browser, expect

from tests.approvals.conftest import exists, sh, token_for
from tests.e2e.test_web_app import browser, docker_hub, sign_in, wait_screen, watch_errors
from tests.support import Api, Hub

__all__ = ["browser", "docker_hub"]


async def test_the_web_app_shows_the_request_and_approving_runs_it_on_screen(
    browser: Browser, docker_hub: Hub
) -> None:
    async with aiohttp.ClientSession() as http:
        person = await Api(http, docker_hub.url).sign_up("web@example.com")
        ai = await token_for(person)
        box = (await person.ok("POST", "/api/containers", {}, 201))["id"]
        page = await browser.new_page()
        errors = watch_errors(page)
        await page.goto(f"{docker_hub.url}/t/{box}")
        await sign_in(page, "web@example.com", lands_on="")
        await expect(page.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
        await wait_screen(page, r"[$#] ?$")

        await sh(ai, box, "mkdir -p /tmp/x")
        code, held = await ai.call(
            "POST",
            f"/api/containers/{box}/exec",
            {"cmd": "rm -rf /tmp/x && echo web-approved", "supervised": True},
        )
        assert code == 202, held
        approval_id = held["approval"]["id"]
        panel = page.get_by_test_id("approvals")
        await expect(panel.locator(f"#cmd-{approval_id}")).to_have_value(
            "rm -rf /tmp/x && echo web-approved", timeout=15_000
        )
        assert await exists(ai, box, "/tmp/x")

        waiting = asyncio.create_task(ai.ok("GET", f"/api/approvals/{approval_id}?wait=60"))
        await panel.get_by_role("button", name="Approve", exact=True).click()
        done = await asyncio.wait_for(waiting, 60)
        assert done["status"] == "completed" and done["result"]["stdout"] == "web-approved\n"
        await wait_screen(page, r"^web-approved\s*$")  # it ran where the person watched
        assert not await exists(ai, box, "/tmp/x")
        assert errors == []
