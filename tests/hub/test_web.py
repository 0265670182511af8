"""The hub's side of the web app: the refresh cookie, the app's pages and assets, the
Content-Security-Policy, and the Origin check on browser terminal sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hub.api.web import STATIC
from hub.state import SETTINGS
from tests.support import Api, assert_error

PASSWORD = "correct horse 1"


@pytest.fixture
async def jar_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies, as a browser does (also for 127.0.0.1)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture
async def base(hub_server: TestServer) -> str:
    return str(hub_server.make_url("")).rstrip("/")


def refresh_cookie(resp: aiohttp.ClientResponse) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        cookie.load(header)
    return cookie


async def test_login_sets_a_strict_httponly_refresh_cookie(api: Api, base: str) -> None:
    await api.ok("POST", "/api/register", {"email": "c@x.io", "password": PASSWORD}, 201)
    async with api.http.post(
        base + "/api/login", json={"email": "c@x.io", "password": PASSWORD}
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
        morsel = refresh_cookie(resp)["rexec_refresh"]
    # API.md's shape is unchanged for clients that are not browsers.
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert morsel.value == body["refresh_token"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/api"
    assert not morsel["secure"]  # plain http here; https (or an https public_url) adds it
    assert int(morsel["max-age"]) > 0


async def test_refresh_and_logout_read_the_cookie(
    jar_http: aiohttp.ClientSession, base: str
) -> None:
    api = Api(jar_http, base)
    await api.ok("POST", "/api/register", {"email": "d@x.io", "password": PASSWORD}, 201)
    first = await api.ok("POST", "/api/login", {"email": "d@x.io", "password": PASSWORD})
    # No body: the browser's cookie is the refresh token; it rotates like the body's.
    again = await api.ok("POST", "/api/refresh")
    assert again["refresh_token"] != first["refresh_token"]
    status, body = await Api(jar_http, base).call(
        "POST", "/api/refresh", {"refresh_token": first["refresh_token"]}
    )
    assert_error(status, body, 401, "token_reused")  # the family is revoked, cookie too
    status, body = await api.call("POST", "/api/refresh")
    assert_error(status, body, 401)

    await api.ok("POST", "/api/login", {"email": "d@x.io", "password": PASSWORD})
    async with jar_http.post(base + "/api/logout") as resp:
        assert resp.status == 204
        cleared = refresh_cookie(resp)["rexec_refresh"]
    assert cleared.value == "" and cleared["path"] == "/api"
    status, body = await api.call("POST", "/api/refresh")
    assert_error(status, body, 400, "invalid_request")  # no cookie left to present


async def test_app_routes_answer_the_page_with_a_strict_csp(api: Api, base: str) -> None:
    if not (STATIC / "index.html").is_file():
        pytest.fail("the web app is not built: scripts/test.sh runs scripts/build-web.sh")
    for path in ("/", "/recordings/ses_123", "/share/some-token", "/account"):
        async with api.http.get(base + path) as resp:
            assert resp.status == 200, path
            assert resp.content_type == "text/html"
            csp = resp.headers["Content-Security-Policy"]
            assert resp.headers["Cache-Control"] == "no-cache"
            text = await resp.text()
        assert '<div id="app">' in text
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"

    asset = next((STATIC / "assets").glob("index-*.js")).name
    async with api.http.get(f"{base}/assets/{asset}") as resp:
        assert resp.status == 200
        assert "immutable" in resp.headers["Cache-Control"]
    async with api.http.get(base + "/favicon.svg") as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"


async def test_assets_go_out_precompressed_as_the_browser_accepts(base: str) -> None:
    """The build writes .br and .gz next to each text asset; the hub sends the one the
    browser accepts (brotli first), with the asset's own type, and the raw file otherwise."""
    if not (STATIC / "index.html").is_file():
        pytest.fail("the web app is not built: scripts/test.sh runs scripts/build-web.sh")
    js = next((STATIC / "assets").glob("TerminalPage-*.js"))
    raw = js.read_bytes()
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for accept, encoding, suffix in (
            ("gzip, deflate, br, zstd", "br", ".br"),
            ("gzip", "gzip", ".gz"),
            ("identity", None, ""),
        ):
            async with http.get(
                f"{base}/assets/{js.name}", headers={"Accept-Encoding": accept}
            ) as resp:
                assert resp.status == 200
                assert resp.headers.get("Content-Encoding") == encoding, accept
                assert resp.content_type.endswith("/javascript")
                assert "Accept-Encoding" in resp.headers.get("Vary", "") or not encoding
                body = await resp.read()
            assert body == (js.parent / (js.name + suffix)).read_bytes()
        assert len((js.parent / (js.name + ".br")).read_bytes()) < len(raw) / 3
        async with http.get(base + "/robots.txt") as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            assert "User-agent: *" in await resp.text()
        async with http.get(base + "/") as resp:
            assert '<meta name="description" content="Rexec' in await resp.text()


async def test_api_paths_never_fall_back_to_the_page(api: Api) -> None:
    for method, path in (
        ("GET", "/api/nope"),
        ("POST", "/api/nope"),
        ("GET", "/assets/missing.js"),
        ("GET", "/assets/..%2Fhub.db"),
    ):
        status, body = await api.call(method, path)
        assert_error(status, body, 404)


async def test_images_lists_the_catalog(api: Api) -> None:
    user = await api.sign_up("e@x.io")
    images = (await user.ok("GET", "/api/images"))["images"]
    assert {i["name"] for i in images} == {"busybox", "debian"}
    assert [i["name"] for i in images if i["default"]] == ["busybox"]
    status, body = await api.call("GET", "/api/images")
    assert_error(status, body, 401)


async def test_terminal_socket_refuses_other_origins(api: Api, base: str) -> None:
    user = await api.sign_up("f@x.io")
    url = f"{base}/ws/terminal/ctr_nothere?token={user.token}"
    host = base.split("://", 1)[1]
    # A page of another site: refused before the upgrade, in the error shape.
    for origin in ("http://evil.example", f"http://{host}.evil.example", "null"):
        async with api.http.get(url, headers={"Origin": origin}) as resp:
            assert_error(resp.status, await resp.json(), 403, "origin_not_allowed")
    # The hub's own page, and clients that send no Origin (CLI, agents), get past it
    # (to the next check: this target does not exist).
    for headers in ({"Origin": base}, {}):
        async with api.http.get(url, headers=headers) as resp:
            assert_error(resp.status, await resp.json(), 404, "container_not_found")


async def test_allowed_origins_setting(hub_server: TestServer, api: Api, base: str) -> None:
    settings = hub_server.app[SETTINGS]
    settings.allowed_origins = ["https://console.example.com/"]
    settings.public_url = "https://rexec.example.com"
    user = await api.sign_up("g@x.io")
    url = f"{base}/ws/terminal/ctr_nothere?token={user.token}"
    for origin, status in (
        ("https://console.example.com", 404),
        ("https://rexec.example.com", 404),
        ("http://console.example.com", 403),
    ):
        async with api.http.get(url, headers={"Origin": origin}) as resp:
            assert resp.status == status, origin


async def test_the_cookie_is_secure_behind_an_https_public_url(
    hub_server: TestServer, api: Api, base: str
) -> None:
    hub_server.app[SETTINGS].public_url = "https://rexec.example.com"
    await api.ok("POST", "/api/register", {"email": "h@x.io", "password": PASSWORD}, 201)
    async with api.http.post(
        base + "/api/login", json={"email": "h@x.io", "password": PASSWORD}
    ) as resp:
        assert resp.status == 200
        assert refresh_cookie(resp)["rexec_refresh"]["secure"] is True


async def test_refresh_and_logout_refuse_a_foreign_origin(
    jar_http: aiohttp.ClientSession, base: str
) -> None:
    api = Api(jar_http, base)
    await api.ok("POST", "/api/register", {"email": "o@x.io", "password": PASSWORD}, 201)
    await api.ok("POST", "/api/login", {"email": "o@x.io", "password": PASSWORD})
    # A page of another site riding on the cookie: refused, and the cookie still works.
    for path in ("/api/refresh", "/api/logout"):
        async with jar_http.post(base + path, headers={"Origin": "http://evil.example"}) as resp:
            assert_error(resp.status, await resp.json(), 403, "origin_not_allowed")
    # The hub's own page, and a client without Origin, go on as before.
    async with jar_http.post(base + "/api/refresh", headers={"Origin": base}) as resp:
        assert resp.status == 200, await resp.text()
    await api.ok("POST", "/api/refresh")
    async with jar_http.post(base + "/api/logout", headers={"Origin": base}) as resp:
        assert resp.status == 204


async def test_every_answer_says_nosniff(api: Api) -> None:
    user = await api.sign_up("n@x.io")
    for who, method, path in (
        (user, "GET", "/api/user"),
        (api, "GET", "/api/user"),  # an error
        (api, "GET", "/api/nothing-here"),
        (api, "GET", "/healthz"),
    ):
        async with api.http.request(method, api.base + path, headers=who.headers()) as resp:
            assert resp.headers.get("X-Content-Type-Options") == "nosniff", (path, resp.headers)
