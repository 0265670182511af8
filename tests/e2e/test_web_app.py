"""Acceptance of the web app: headless Chromium (the system's, driven by Playwright)
against a real hub with real Docker containers and a real agent.

Screenshots of every page (light, dark, phone width) go to test-artifacts/web/.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Response,
    Route,
    async_playwright,
    expect,
)

from hub.passcodes import totp
from tests.containers.conftest import cleanup, ensure_docker
from tests.e2e.conftest import RunningAgent
from tests.support import ROOT, Api, Hub, TcpProxy

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
SHOTS = ROOT / "test-artifacts" / "web"
PASSWORD = "correct horse 1"
PHONE = {"width": 390, "height": 844}
TIMES = "\N{MULTIPLICATION SIGN}"  # the size badge, as in 120x40


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test.sh installs it")
    if not (ROOT / "hub/web/static/index.html").exists():
        pytest.fail("the web app is not built: scripts/test.sh runs scripts/build-web.sh")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        await b.close()


@pytest.fixture
async def docker_hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub process that runs containers (busybox, no network, a warm pool of one)."""
    ensure_docker()
    import docker

    env = {
        "REXEC_CONTAINER_NETWORK": "none",
        "REXEC_WARM_POOL_SIZE": "1",
        "REXEC_CONTAINER_MEMORY_MB_DEFAULT": "128",
    }
    hub = await Hub(tmp_path / "hub", env=env).start()
    yield hub
    hub.kill()
    client = docker.from_env()
    cleanup(client, hub.data_dir)
    client.close()


def watch_errors(page: Page) -> list[str]:
    """Script errors and console errors; not the browser's own log of 4xx answers (a
    signed-out visit asks /api/refresh, answered 400 when there is no cookie)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    return errors


async def screen(page: Page) -> str:
    text: str = await page.evaluate("() => window.__rexec ? window.__rexec.screen() : ''")
    return text


async def wait_screen(page: Page, pattern: str, timeout: float = 15_000) -> None:
    """Wait until xterm's buffer has a line matching `pattern` (a regex, multiline)."""
    await page.wait_for_function(
        "(p) => window.__rexec && new RegExp(p, 'm').test(window.__rexec.screen())",
        arg=pattern,
        timeout=timeout,
    )


async def shot(page: Page, name: str) -> None:
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


async def type_line(page: Page, line: str) -> None:
    await page.locator("[data-testid=terminal]").click()
    await page.keyboard.type(line)
    await page.keyboard.press("Enter")


async def sign_up(page: Page, url: str, email: str) -> None:
    await page.goto(url + "/")
    await expect(page).to_have_url(re.compile(r"/signin$"))
    await page.get_by_role("button", name="Create an account").click()
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await shot(page, "signup-light")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


async def sign_in(page: Page, email: str, lands_on: str = "Dashboard") -> None:
    await expect(page.get_by_role("heading", name="Sign in to Rexec")).to_be_visible()
    await page.fill("#email", email)
    await page.fill("#password", "wrong password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("password")
    await shot(page, "signin-error-light")
    await page.fill("#password", PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    if lands_on:
        await expect(page.get_by_role("heading", name=lands_on)).to_be_visible()


async def assert_no_token_in_storage(page: Page, context: BrowserContext) -> None:
    stored = await page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    assert "eyJ" not in stored and "rx_" not in stored, stored  # no JWT, no API token
    cookies = {c["name"]: c for c in await context.cookies()}
    refresh = cookies["rexec_refresh"]
    assert refresh["httpOnly"] is True
    assert refresh["sameSite"] == "Strict"
    assert refresh["path"] == "/api"
    assert list(cookies) == ["rexec_refresh"]
    readable = await page.evaluate("() => document.cookie")
    assert "rexec_refresh" not in readable


async def test_containers_terminal_share_reload_and_recordings(
    browser: Browser, docker_hub: Hub
) -> None:
    url = docker_hub.url
    owner_ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await owner_ctx.new_page()
    errors = watch_errors(page)
    response = await page.goto(url + "/")
    assert response is not None
    assert "script-src 'self' 'wasm-unsafe-eval';" in response.headers["content-security-policy"]

    # Sign up, sign out, sign in (with a wrong password first).
    await sign_up(page, url, "owner@example.com")
    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, "owner@example.com")
    await assert_no_token_in_storage(page, owner_ctx)

    # Create a container and open its terminal.
    await page.get_by_test_id("create-container").click()
    row = page.locator("[data-testid=containers] tbody tr")
    await expect(row).to_have_count(1, timeout=30_000)
    await shot(page, "dashboard-light")
    await row.get_by_role("link", name="Open terminal").click()
    await expect(page.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
    await wait_screen(page, r"[$#] ?$")  # the prompt
    await type_line(page, "echo hello")
    await wait_screen(page, r"^hello\s*$")
    await type_line(page, "MARK=kept-$((6*7)); echo set-$MARK")
    await wait_screen(page, r"^set-kept-42\s*$")
    session_id = await page.evaluate("() => window.__rexec.session()")
    assert session_id and session_id.startswith("ses_")
    assert f"session={session_id}" in page.url

    # Share it with a viewer, who sees the owner's output live and cannot type.
    await page.get_by_role("button", name="Share", exact=True).click()
    await page.get_by_role("button", name="Create link").click()
    share_url = await page.get_by_test_id("share-url").inner_text()
    assert share_url.startswith(url + "/share/")
    await shot(page, "share-dialog-light")
    await page.keyboard.press("Escape")

    viewer_ctx = await browser.new_context(viewport={"width": 1000, "height": 700})
    viewer = await viewer_ctx.new_page()
    viewer_errors = watch_errors(viewer)
    await viewer.goto(share_url)
    await expect(viewer.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
    await wait_screen(viewer, r"^hello\s*$")  # the recent screen
    await expect(page.get_by_test_id("participant-count")).to_have_text("2")
    await type_line(page, "echo live-$((40+2))")
    await wait_screen(viewer, r"^live-42\s*$")
    await type_line(viewer, "echo VIEWER-TYPED")
    await type_line(page, "echo after-viewer")
    await wait_screen(viewer, r"^after-viewer\s*$")
    assert "VIEWER-TYPED" not in await screen(page)
    assert "VIEWER-TYPED" not in await screen(viewer)
    await page.get_by_role("button", name="Participants").click()
    await expect(page.get_by_test_id("participants")).to_contain_text("Guest (share link)")
    await shot(page, "terminal-participants-light")
    await shot(viewer, "terminal-viewer-light")
    assert viewer_errors == []

    # Reload: the same shell comes back with its recent screen.
    await page.reload()
    await expect(page.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
    await wait_screen(page, r"^live-42\s*$")
    assert await page.evaluate("() => window.__rexec.session()") == session_id
    await type_line(page, "echo again-$MARK")
    await wait_screen(page, r"^again-kept-42\s*$")
    await wait_screen(viewer, r"^again-kept-42\s*$")  # the viewer stayed on

    # End it; its recording plays and downloads.
    await type_line(page, "exit 3")
    await expect(page.get_by_test_id("ended-banner")).to_contain_text("exited with code 3")
    await expect(viewer.get_by_test_id("ended-banner")).to_be_visible()
    await page.get_by_role("link", name="Recording").click()
    await expect(page.get_by_test_id("player").locator(".ap-player")).to_be_visible()
    await page.get_by_test_id("player").click()  # play
    await expect(page.get_by_test_id("player")).to_contain_text("again-kept-42", timeout=20_000)
    await shot(page, "player-light")
    async with page.expect_download() as info:
        await page.get_by_test_id("download").click()
    download = await info.value
    assert download.suggested_filename == f"{session_id}.cast"
    cast = Path(await download.path()).read_text()
    assert cast.startswith("{") and '"version": 2' in cast.splitlines()[0]
    assert "again-kept-42" in cast

    await page.get_by_role("link", name="Recordings", exact=True).click()
    await expect(page.locator(f"[data-testid=recordings] tr[data-id={session_id}]")).to_be_visible()
    await shot(page, "recordings-light")

    # The other pages, for the record.
    await page.get_by_role("link", name="Add a server").click()
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_test_id("install-command")).to_contain_text("curl")
    await expect(page.get_by_test_id("install-command")).to_contain_text(url + "/install.sh")
    await shot(page, "add-server-light")
    await page.get_by_role("link", name="Account").click()
    await page.get_by_role("button", name="Set up a passcode").click()
    await expect(page.get_by_test_id("passcode-qr")).to_be_visible()
    await page.fill("#tok-name", "laptop")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_test_id("new-token")).to_contain_text("rx_")
    await shot(page, "account-light")
    await page.get_by_role("link", name="Billing").click()
    await expect(page.get_by_role("heading", name="Plans")).to_be_visible()
    await expect(page.locator(".plan.current")).to_have_count(1)
    await shot(page, "billing-light")
    await assert_no_token_in_storage(page, owner_ctx)
    assert errors == []

    # Dark and phone-width views of the same account (a new sign-in each).
    dark_ctx = await browser.new_context(
        color_scheme="dark", viewport={"width": 1280, "height": 800}
    )
    dark = await dark_ctx.new_page()
    await dark.goto(url + "/signin")
    await shot(dark, "signin-dark")
    await sign_in(dark, "owner@example.com")
    await expect(dark.locator("[data-testid=containers] tbody tr")).to_have_count(1)
    await shot(dark, "dashboard-dark")
    await dark.get_by_role("link", name="Open terminal").click()
    await wait_screen(dark, r"[$#] ?$")
    await type_line(dark, "ls -la / | head -n 12")
    await wait_screen(dark, r"bin")
    await shot(dark, "terminal-dark")
    await dark.goto(url + "/billing")
    await expect(dark.locator(".plan.current")).to_have_count(1)
    await shot(dark, "billing-dark")

    phone_ctx = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone = await phone_ctx.new_page()
    await phone.goto(url + "/")
    await sign_in(phone, "owner@example.com")
    await shot(phone, "dashboard-phone")
    await phone.get_by_role("link", name="Open terminal").click()
    await wait_screen(phone, r"[$#] ?$")
    await shot(phone, "terminal-phone")
    await phone.goto(url + "/account")
    await expect(phone.get_by_role("heading", name="API tokens")).to_be_visible()
    await shot(phone, "account-phone")
    for ctx in (owner_ctx, viewer_ctx, dark_ctx, phone_ctx):
        await ctx.close()


async def test_agent_terminal_from_the_dashboard(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    page = await browser.new_page()
    errors = watch_errors(page)
    await page.goto(hub.url + "/")
    await sign_in(page, "owner@example.com")
    agents = page.get_by_test_id("agents")
    await expect(agents).to_contain_text("online")
    await agents.get_by_role("button", name="Terminal").click()
    await wait_screen(page, r"[$#] ?$")
    await type_line(page, "echo $((6*7))")
    await wait_screen(page, r"^42\s*$")
    await type_line(page, "exit 3")
    await expect(page.get_by_test_id("ended-banner")).to_contain_text("exited with code 3")
    assert errors == []


async def test_a_wrong_share_link_says_so(browser: Browser, hub: Hub) -> None:
    page = await browser.new_page()
    await page.goto(hub.url + "/share/not-a-real-token")
    await expect(page.get_by_role("alert")).to_contain_text("share", ignore_case=True)


async def test_a_dropped_connection_resumes_the_same_session(
    browser: Browser, docker_hub: Hub
) -> None:
    """The reconnect banner shows while the link is down; the page then resumes the same
    session from the last byte it showed: every line once, in order."""
    async with aiohttp.ClientSession() as http:
        api = await Api(http, docker_hub.url).sign_up("net@example.com")
        ctr = await api.ok("POST", "/api/containers", {}, 201)
    proxy = await TcpProxy(docker_hub.port).start()
    try:
        base = f"http://127.0.0.1:{proxy.port}"
        page = await browser.new_page()
        errors = watch_errors(page)
        await page.goto(f"{base}/t/{ctr['id']}")
        await sign_in(page, "net@example.com", lands_on="")  # and back to the terminal
        await expect(page.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
        await wait_screen(page, r"[$#] ?$")
        await type_line(
            page, "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line-$i; sleep 0.01; done"
        )
        await wait_screen(page, r"^line-20\s*$")
        await proxy.cut()
        await expect(page.get_by_test_id("reconnect-banner")).to_be_visible(timeout=10_000)
        await shot(page, "terminal-reconnecting-light")
        await proxy.restore()
        await expect(page.get_by_test_id("status")).to_have_text("Connected", timeout=20_000)
        await wait_screen(page, r"^line-300\s*$", timeout=30_000)
        lines = re.findall(r"^line-(\d+)\s*$", await screen(page), re.M)
        assert [int(n) for n in lines] == list(range(1, 301))
        assert errors == []
    finally:
        await proxy.close()


async def test_passcode_set_up_and_sign_in_with_it(browser: Browser, hub: Hub, owner: Api) -> None:
    page = await browser.new_page()
    errors = watch_errors(page)
    await page.goto(hub.url + "/account")
    await sign_in(page, "owner@example.com", lands_on="Account")
    await page.get_by_role("button", name="Set up a passcode").click()
    secret = await page.get_by_label("passcode secret", exact=True).inner_text()
    await page.fill("#pc-code", totp(secret))
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.get_by_label("recovery codes", exact=True)).to_be_visible()
    await expect(page.locator("#pc-h + .badge")).to_have_text("On")
    await shot(page, "account-passcode-on-light")

    await page.get_by_role("button", name="Sign out").click()
    await page.fill("#email", "owner@example.com")
    await page.fill("#password", PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Enter your passcode")).to_be_visible()
    await expect(page.locator("#passcode")).to_be_focused()
    await shot(page, "signin-passcode-light")
    await page.keyboard.type(totp(secret, time.time() + 30))  # the next step: not a replay
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert errors == []


async def test_a_share_link_with_a_passcode(browser: Browser, docker_hub: Hub) -> None:
    async with aiohttp.ClientSession() as http:
        api = await Api(http, docker_hub.url).sign_up("sharer@example.com")
        ctr = await api.ok("POST", "/api/containers", {}, 201)
        ws_url = docker_hub.url.replace("http", "ws", 1)
        async with http.ws_connect(f"{ws_url}/ws/terminal/{ctr['id']}?token={api.token}") as ws:
            first = await ws.receive_json(timeout=15)
            assert first["type"] == "session"
            made = await api.ok(
                "POST",
                f"/api/sessions/{first['id']}/share",
                {"role": "writer", "passcode": "open sesame"},
                201,
            )
            page = await browser.new_page()
            errors = watch_errors(page)
            await page.goto(made["url"])
            await expect(
                page.get_by_role("heading", name="This link needs a passcode")
            ).to_be_visible()
            await page.fill("#share-passcode", "wrong one")
            await page.keyboard.press("Enter")
            await expect(page.get_by_text("That passcode did not work.")).to_be_visible()
            await shot(page, "share-passcode-light")
            errors.clear()  # the browser logs the refused socket; that refusal was the point
            await page.fill("#share-passcode", "open sesame")
            await page.keyboard.press("Enter")
            await expect(page.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
            await expect(page.locator(".role")).to_have_text("writer")
            await ws.send_bytes(b"echo shared-$((1+1))\n")
            await wait_screen(page, r"^shared-2\s*$")
            await type_line(page, "echo from-writer-$((2+3))")  # a writer's keys count
            await wait_screen(page, r"^from-writer-5\s*$")
            assert errors == []


async def test_keyboard_sign_in_and_signing_out_ends_the_terminals(
    browser: Browser, docker_hub: Hub
) -> None:
    """Signing in needs only the keyboard; a second tab signs in silently from the
    cookie; signing out there revokes the sign-in, which closes the first tab's terminal."""
    async with aiohttp.ClientSession() as http:
        api = await Api(http, docker_hub.url).sign_up("keys@example.com")
        await api.ok("POST", "/api/containers", {}, 201)
    ctx = await browser.new_context()
    page = await ctx.new_page()
    await page.goto(docker_hub.url + "/signin")
    for _ in range(6):  # Tab from the top of the page to the email field
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement.id") == "email":
            break
    await page.keyboard.type("keys@example.com")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await page.get_by_role("link", name="Open terminal").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
    await wait_screen(page, r"[$#] ?$")
    await type_line(page, "echo before-$((1+1))")
    await wait_screen(page, r"^before-2\s*$")
    session_id = await page.evaluate("() => window.__rexec.session()")

    other = await ctx.new_page()
    await other.goto(docker_hub.url + "/billing")  # no password: the cookie signs it in
    await expect(other.get_by_role("heading", name="Billing")).to_be_visible()
    await other.get_by_role("button", name="Sign out").click()
    await expect(other.get_by_role("heading", name="Sign in to Rexec")).to_be_visible()

    await expect(page.get_by_role("alert")).to_contain_text("signed out", timeout=10_000)
    assert [c["name"] for c in await ctx.cookies()] == []
    # Sign in again from the terminal's banner: back to the same session.
    await page.get_by_role("alert").get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Sign in to Rexec")).to_be_visible()
    assert f"session%3D{session_id}" in page.url
    await page.fill("#email", "keys@example.com")
    await page.fill("#password", PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
    await wait_screen(page, r"^before-2\s*$")
    assert await page.evaluate("() => window.__rexec.session()") == session_id
    await page.reload()  # signed in for good: the reload comes back to it
    await wait_screen(page, r"^before-2\s*$")
    await ctx.close()


async def test_reloads_during_and_after_vi_type_nothing(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent, tmp_path: Path
) -> None:
    """vi asks the terminal for its attributes, cursor position, colours and modes; the
    replayed screen holds those queries, and a reload or join must not answer them again
    (the answers would be typed into vi, then into the shell)."""
    page = await browser.new_page()
    errors = watch_errors(page)
    await page.goto(f"{hub.url}/t/{agent.id}")
    await sign_in(page, "owner@example.com", lands_on="")
    await wait_screen(page, r"[$#] ?$")
    status = page.get_by_test_id("status")

    async def reload_ten_times(until: str) -> None:
        for _ in range(10):
            await page.reload()
            await expect(status).to_have_text("Connected", timeout=15_000)
            await wait_screen(page, until)

    await type_line(page, f"vi {tmp_path / 'x'}")
    await wait_screen(page, r"^~\s*$")
    await reload_ten_times(r"^~\s*$")
    # Unchanged, vi quits on :q; typed-in answers would have edited the text or
    # left vi in another mode, and :q would not bring the prompt back.
    await page.keyboard.press("Escape")
    await type_line(page, ":q")
    await wait_screen(page, r"[$#] ?$")
    await reload_ten_times(r"[$#] ?$")
    await type_line(page, "echo clean-$((40+2))")
    await wait_screen(page, r"^clean-42\s*$")
    text = await screen(page)
    assert re.search(r"[$#] echo clean-\$\(\(40\+2\)\)\s*$", text, re.M), text
    assert not re.search(r"rgb:|\$y|;\d+c", text), text
    assert errors == []


async def test_a_shared_terminal_has_the_owners_size(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    """The rule (sessions.md): the PTY has the owner's window size; a writer with a smaller
    window sees it at that size, scaled down, and says whose size it is; with the owner
    gone, the writer's window sets it."""
    big = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await big.new_page()
    errors = watch_errors(page)
    await page.goto(f"{hub.url}/t/{agent.id}")
    await sign_in(page, "owner@example.com", lands_on="")
    await wait_screen(page, r"[$#] ?$")
    cols, rows = await page.evaluate("() => window.__rexec.size()")
    assert cols > 100
    await expect(page.get_by_test_id("term-size")).to_have_text(f"{cols}{TIMES}{rows}")
    session_id = await page.evaluate("() => window.__rexec.session()")
    made = await owner.ok("POST", f"/api/sessions/{session_id}/share", {"role": "writer"}, 201)

    small = await browser.new_context(viewport={"width": 640, "height": 480})
    guest = await small.new_page()
    guest_errors = watch_errors(guest)
    await guest.goto(made["url"])
    await expect(guest.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
    await expect(page.get_by_test_id("participant-count")).to_have_text("2")
    badge = guest.get_by_test_id("term-size")
    await expect(badge).to_contain_text(f"{cols}{TIMES}{rows}")
    await expect(badge).to_contain_text("the owner's size")
    assert await guest.evaluate("() => window.__rexec.size()") == [cols, rows]
    transform = await guest.locator(".xterm").evaluate("(e) => e.style.transform")
    assert transform.startswith("scale(0."), transform  # the whole width, smaller
    await type_line(guest, "stty size")  # the writer types; the owner's size holds
    await wait_screen(page, rf"^{rows} {cols}\s*$")
    await wait_screen(guest, rf"^{rows} {cols}\s*$")
    assert await page.evaluate("() => window.__rexec.size()") == [cols, rows]
    await expect(page.get_by_test_id("term-size")).to_have_text(f"{cols}{TIMES}{rows}")

    await big.close()  # the owner leaves: the writer's window sets the size now
    await expect(badge).not_to_contain_text("size", timeout=10_000)
    small_cols, small_rows = await guest.evaluate("() => window.__rexec.size()")
    assert small_cols < cols
    await type_line(guest, "clear; stty size")
    await wait_screen(guest, rf"^{small_rows} {small_cols}\s*$")
    await expect(badge).to_have_text(f"{small_cols}{TIMES}{small_rows}")
    assert await guest.locator(".xterm").evaluate("(e) => e.style.transform") == ""
    assert errors == [] and guest_errors == []
    await small.close()


async def record_ticks(hub: Hub, api: Api, target: str, count: int) -> str:
    """A session that prints `tick-N` every 0.2 s, then exits; its id."""
    async with aiohttp.ClientSession() as http:
        ws_url = hub.url.replace("http", "ws", 1)
        async with http.ws_connect(f"{ws_url}/ws/terminal/{target}?token={api.token}") as ws:
            first = await ws.receive_json(timeout=15)
            loop = f"for i in $(seq 1 {count}); do echo tick-$i; sleep 0.2; done; exit 0\n"
            await ws.send_bytes(loop.encode())
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT and '"exit"' in msg.data:
                    break
    session_id: str = first["id"]
    return session_id


async def test_changing_the_speed_keeps_the_recording_playing(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    session_id = await record_ticks(hub, owner, agent.id, 25)
    page = await browser.new_page()
    errors = watch_errors(page)
    await page.goto(f"{hub.url}/recordings/{session_id}")
    await sign_in(page, "owner@example.com", lands_on="")
    player = page.get_by_test_id("player")
    await expect(player.locator(".ap-player")).to_be_visible()
    await player.click()  # play
    await expect(player).to_contain_text("tick-3", timeout=20_000)
    await page.select_option("#speed", "2")
    # Still playing, from where it was: later ticks come without another click.
    await expect(player).to_contain_text("tick-20", timeout=20_000)
    await expect(player.locator(".ap-timer")).not_to_contain_text("--:--")
    assert "tick-1\n" not in await player.inner_text()  # it went on, not back to the start

    # The recordings list and the player name the server, not only its agt_ id.
    name = (await owner.ok("GET", f"/api/agents/{agent.id}"))["name"]
    await expect(page.get_by_text(f"{name} · ")).to_be_visible()
    await page.get_by_role("link", name="Recordings", exact=True).click()
    cell = page.locator(f"[data-testid=recordings] tr[data-id={session_id}] [data-testid=target]")
    await expect(cell).to_have_text(f"{name}\N{NO-BREAK SPACE}{agent.id}")
    assert errors == []


async def test_unknown_targets_and_recordings_say_not_found(
    browser: Browser, hub: Hub, owner: Api
) -> None:
    page = await browser.new_page()
    errors = watch_errors(page)
    await page.goto(f"{hub.url}/t/garbage")
    await sign_in(page, "owner@example.com", lands_on="")
    await expect(page.get_by_test_id("not-found")).to_be_visible()  # back from signing in
    for target in ("garbage", "ctr_doesnotexist", "agt_0123456789abcdef0123"):
        await page.goto(f"{hub.url}/t/{target}")
        await expect(page.get_by_test_id("not-found")).to_contain_text(
            f"no container or server “{target}”"
        )
        await expect(page.get_by_test_id("reconnect-banner")).to_have_count(0)
        await expect(page.get_by_role("button", name="New session")).to_have_count(0)
        await expect(page.get_by_test_id("status")).to_have_text("Disconnected")
    await page.goto(f"{hub.url}/recordings/ses_nope")
    await expect(page.get_by_role("alert")).to_contain_text("There is no recording with this id.")
    await expect(page.get_by_test_id("player")).to_have_count(0)
    await expect(page.get_by_role("button", name="+5s")).to_be_disabled()
    del errors[:]  # the browser logs the 404s it was answered; they were the point


async def test_a_new_token_does_not_take_an_existing_server_for_the_new_one(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    """ "Create token" before the server list has come back: the server already there is
    not reported as the one that just registered."""
    page = await browser.new_page()
    await page.goto(f"{hub.url}/signin")
    await sign_in(page, "owner@example.com")
    release = asyncio.Event()
    held: list[str] = []

    async def hold_first_list(route: Route) -> None:
        if route.request.method == "GET" and not held:
            held.append(route.request.url)
            await release.wait()
        await route.continue_()

    await page.route("**/api/agents", hold_first_list)
    await page.get_by_role("link", name="Add a server", exact=True).click()
    await expect(page.locator(".skeleton")).to_be_visible()  # the list has not come back
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_test_id("install-command")).to_contain_text("curl")
    release.set()
    await expect(page.get_by_role("table")).to_contain_text("online")  # the list is in
    await expect(page.get_by_text("Waiting for the server to register")).to_be_visible()
    await expect(page.get_by_text("registered and is")).to_have_count(0)
    assert held


async def test_sign_in_form_and_ssh_keys_at_phone_width(
    browser: Browser, hub: Hub, owner: Api
) -> None:
    import asyncssh

    ctx = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await ctx.new_page()
    errors = watch_errors(page)
    await page.goto(f"{hub.url}/account")
    await page.get_by_role("button", name="Sign in").click()  # nothing typed yet
    await expect(page.get_by_role("alert")).to_have_text("Enter your email address.")
    await expect(page.locator("#email")).to_be_focused()
    await page.fill("#email", "owner@example.com")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Enter your password.")
    await page.fill("#password", PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Account")).to_be_visible()

    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    await page.fill("#key-name", "phone")
    await page.fill("#key-text", key)
    await page.get_by_role("button", name="Add key").click()
    row = page.locator("tr", has_text="phone")
    await expect(row.locator(".badge")).to_have_text("ssh-ed25519")  # without a reload
    toast = page.locator(".toast", has_text="Key added")
    await expect(toast).to_be_visible()
    box = await toast.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    assert errors == []
    await ctx.close()


async def test_a_revoked_viewer_leaves_the_participants(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    page = await browser.new_page()
    await page.goto(f"{hub.url}/t/{agent.id}")
    await sign_in(page, "owner@example.com", lands_on="")
    await wait_screen(page, r"[$#] ?$")
    session_id = await page.evaluate("() => window.__rexec.session()")
    made = await owner.ok("POST", f"/api/sessions/{session_id}/share", {"role": "viewer"}, 201)
    viewer = await browser.new_page()
    await viewer.goto(made["url"])
    await expect(viewer.get_by_test_id("status")).to_have_text("Connected", timeout=15_000)
    await expect(page.get_by_test_id("participant-count")).to_have_text("2")
    share_id = made["share"]["id"]
    await owner.ok("DELETE", f"/api/sessions/{session_id}/shares/{share_id}", None, 204)
    await expect(viewer.get_by_role("alert")).to_be_visible(timeout=10_000)
    await expect(page.get_by_test_id("participant-count")).to_have_text("1", timeout=10_000)
    await page.get_by_role("button", name="Participants").click()
    await expect(page.get_by_test_id("participants")).not_to_contain_text("Guest")


AXE = ROOT / "web/node_modules/axe-core/axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


async def axe_violations(page: Page, where: str) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is, one line each."""
    await page.wait_for_load_state("networkidle")
    if not await page.evaluate("() => Boolean(window.axe)"):
        await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')"
        " + ' ' + (n.failureSummary || '').replace(/\\s+/g, ' ')).join(' | ')))",
        WCAG,
    )
    return [f"{where}: {v}" for v in found]


async def test_no_wcag_violations_on_any_page_in_either_theme(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    """axe-core (WCAG 2.1 A and AA) on every page, light and dark."""
    if not AXE.exists():
        pytest.fail("axe-core is missing: scripts/build-web.sh installs web/'s dev packages")
    session_id = await record_ticks(hub, owner, agent.id, 3)
    made_live = await owner.ok("POST", "/api/agents/tokens", {"name": "spare"}, 201)
    assert made_live["token"]
    problems: list[str] = []
    for scheme in ("light", "dark"):
        ctx = await browser.new_context(
            color_scheme=scheme, viewport={"width": 1280, "height": 800}, bypass_csp=True
        )
        page = await ctx.new_page()
        await page.goto(f"{hub.url}/signin")
        await expect(page.get_by_role("heading", name="Sign in to Rexec")).to_be_visible()
        problems += await axe_violations(page, f"signin {scheme}")
        await page.get_by_role("button", name="Sign in").click()  # the error state
        problems += await axe_violations(page, f"signin error {scheme}")
        await page.get_by_role("button", name="Create an account").click()
        problems += await axe_violations(page, f"signup {scheme}")
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await sign_in(page, "owner@example.com")
        await expect(page.get_by_test_id("agents")).to_contain_text("online")
        problems += await axe_violations(page, f"dashboard {scheme}")
        for path, heading in (
            ("/recordings", "Recordings"),
            ("/servers/new", "Add a server"),
            ("/account", "Account"),
            ("/billing", "Billing"),
            ("/nowhere", None),
        ):
            await page.goto(hub.url + path)
            if heading:
                await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            problems += await axe_violations(page, f"{path} {scheme}")
        await page.goto(f"{hub.url}/recordings/{session_id}")
        await expect(page.get_by_test_id("player").locator(".ap-player")).to_be_visible()
        problems += await axe_violations(page, f"player {scheme}")
        await page.goto(f"{hub.url}/t/{agent.id}")
        await wait_screen(page, r"[$#] ?$")
        problems += await axe_violations(page, f"terminal {scheme}")
        await page.get_by_role("button", name="Participants").click()
        await page.get_by_role("button", name="Share", exact=True).click()
        problems += await axe_violations(page, f"terminal share dialog {scheme}")
        await ctx.close()
    assert problems == [], "\n".join(problems)


async def focused(page: Page) -> str:
    """What has the focus: the terminal, or a control's accessible text."""
    text: str = await page.evaluate(
        "() => { const e = document.activeElement;"
        " if (!e || e === document.body) return 'body';"
        " if (e.classList.contains('xterm-helper-textarea')) return 'terminal';"
        " return (e.getAttribute('aria-label') || e.textContent || e.id).trim(); }"
    )
    return text


async def test_keyboard_only_walk_of_the_terminal_page(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    """No keyboard trap (WCAG 2.1.2): Ctrl+M lets Tab leave the terminal, to Share and End
    and back; ending the session puts the focus on what comes next. The skip link too."""
    page = await browser.new_page()
    page.on("dialog", lambda d: d.accept())  # End asks to confirm
    errors = watch_errors(page)
    await page.goto(f"{hub.url}/signin")
    await sign_in(page, "owner@example.com")
    await page.reload()  # from the top of a page
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await page.keyboard.press("Tab")
    assert await focused(page) == "Skip to the content"
    await expect(page.get_by_role("link", name="Skip to the content")).to_be_in_viewport()
    await page.keyboard.press("Enter")
    assert await page.evaluate("() => document.activeElement.id") == "main"

    await page.goto(f"{hub.url}/t/{agent.id}")
    await wait_screen(page, r"[$#] ?$")
    assert await focused(page) == "terminal"
    await page.keyboard.press("Tab")  # the shell's (completion): the focus stays
    assert await focused(page) == "terminal"
    await page.keyboard.press("Control+u")  # and the line is empty again
    await page.keyboard.press("Control+m")
    mode = page.get_by_test_id("tab-mode")
    await expect(mode).to_have_text("Ctrl+M: Tab moves focus")
    await expect(mode).to_have_attribute("aria-pressed", "true")
    seen = []
    for _ in range(12):
        await page.keyboard.press("Shift+Tab")
        seen.append(await focused(page))
        if seen[-1] == "Share":
            break
    assert seen[-1] == "Share", seen
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Create link")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="Create link")).to_be_hidden()
    for _ in range(12):  # forward again, past End, back into the terminal
        await page.keyboard.press("Tab")
        seen.append(await focused(page))
        if seen[-1] == "terminal":
            break
    assert seen[-1] == "terminal" and "End" in seen, seen
    await page.keyboard.press("Control+m")  # Tab goes to the shell again
    await expect(mode).to_have_attribute("aria-pressed", "false")
    await page.keyboard.type("echo back-$((1+1))")
    await page.keyboard.press("Enter")
    await wait_screen(page, r"^back-2\s*$")
    await page.keyboard.press("Control+m")
    for _ in range(12):
        await page.keyboard.press("Shift+Tab")
        if await focused(page) == "End":
            break
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("ended-banner")).to_be_visible(timeout=15_000)
    await expect(page.get_by_role("button", name="New session")).to_be_focused()
    assert errors == []


async def test_a_cold_load_is_compressed_quiet_and_lean(
    browser: Browser, hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    """Signed out: no refresh call (its 400 would be a console error), nothing logged.
    Signed in, the dashboard does not fetch the terminal's code until a way to a terminal
    is pointed at; every script arrives compressed."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await ctx.new_page()
    logged: list[str] = []
    page.on("console", lambda m: logged.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: logged.append(str(e)))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    scripts: dict[str, str | None] = {}

    async def note(resp: Response) -> None:
        if resp.request.resource_type == "script":
            scripts[resp.url] = (await resp.all_headers()).get("content-encoding")

    page.on("response", note)
    await page.goto(hub.url + "/")
    await expect(page.get_by_role("heading", name="Sign in to Rexec")).to_be_visible()
    assert not [u for u in asked if u.endswith("/api/refresh")], asked
    assert logged == []
    await sign_in(page, "owner@example.com")
    del logged[:]  # the helper's wrong password first: the browser logs that 401
    await page.reload()  # a signed-in load asks once, silently
    await expect(page.get_by_test_id("agents")).to_contain_text("online")
    await page.wait_for_load_state("networkidle")
    assert not [u for u in asked if "TerminalPage" in u], asked
    await page.get_by_test_id("agents").get_by_role("button", name="Terminal").hover()
    await page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(e => e.name.includes('TerminalPage'))"
    )
    await page.get_by_test_id("agents").get_by_role("button", name="Terminal").click()
    await wait_screen(page, r"[$#] ?$")
    assert scripts and all(enc == "br" for enc in scripts.values()), scripts
    assert [m for m in logged if not m.startswith(("log:", "debug:", "info:"))] == []

    # A cold load of the terminal page, nothing cached (docs/web.md records these numbers).
    state = await ctx.storage_state()
    await ctx.close()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, storage_state=state)
    cold = await ctx.new_page()
    await cold.goto(f"{hub.url}/t/{agent.id}")
    await wait_screen(cold, r"[$#] ?$")
    prompt_ms = await cold.evaluate("() => performance.now()")
    paint_ms = await cold.evaluate(
        "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
    )
    js_bytes = await cold.evaluate(
        "() => performance.getEntriesByType('resource').filter(e => e.initiatorType === 'script'"
        " || e.name.endsWith('.js')).reduce((n, e) => n + e.transferSize, 0)"
    )
    print(
        f"terminal page: JS {js_bytes} B transferred, first paint {paint_ms:.0f} ms, "
        f"prompt {prompt_ms:.0f} ms"
    )
    assert 0 < js_bytes < 200_000  # 526 KB raw
    await ctx.close()
