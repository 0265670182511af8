"""Passcodes: RFC 6238 vectors, set-up and confirmation, sign-in with a code, replay,
recovery codes that work once, and removal."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select, update

from hub.db.engine import Database
from hub.db.models import User
from hub.passcodes import SecretBox, hotp, match_step, otpauth_uri, totp
from hub.settings import HubSettings
from tests.accounts.conftest import MakeApi
from tests.support import Api, assert_error

PASSWORD = "correct horse 1"
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


def test_hotp_matches_rfc_4226() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314"]
    assert [hotp(RFC_SECRET, c) for c in range(5)] == expected


@pytest.mark.parametrize(
    ("at", "code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ],
)
def test_totp_matches_rfc_6238(at: int, code: str) -> None:
    assert hotp(RFC_SECRET, at // 30, digits=8) == code


def test_window_and_uri() -> None:
    now = 1_700_000_000.0
    assert match_step(RFC_SECRET, totp(RFC_SECRET, now - 30), now) == int(now // 30) - 1
    assert match_step(RFC_SECRET, totp(RFC_SECRET, now + 30), now) == int(now // 30) + 1
    assert match_step(RFC_SECRET, totp(RFC_SECRET, now - 90), now) is None
    assert match_step(RFC_SECRET, "12345", now) is None
    uri = urlparse(otpauth_uri(RFC_SECRET, "ann@x.io", "Rexec"))
    assert (uri.scheme, uri.netloc, uri.path) == ("otpauth", "totp", "/Rexec:ann@x.io")
    query = parse_qs(uri.query)
    assert query["secret"] == [RFC_SECRET] and query["issuer"] == ["Rexec"]


async def _enabled(api: Api, email: str) -> tuple[Api, str, list[str]]:
    user = await api.sign_up(email, PASSWORD)
    setup = await user.ok("POST", "/api/user/passcode", {})
    assert setup["enabled"] is False and setup["otpauth_uri"].startswith("otpauth://totp/")
    secret = setup["secret"]
    status, body = await user.call("POST", "/api/user/passcode", {"code": "000000"})
    if status != 200:  # a wrong code, unless 000000 happened to be right
        assert_error(status, body, 422, "invalid_passcode")
        body = await user.ok("POST", "/api/user/passcode", {"code": totp(secret)})
    assert body["enabled"] is True and len(set(body["recovery_codes"])) == 10
    return user, secret, body["recovery_codes"]


async def test_login_needs_the_passcode_and_a_code_works_once(api: Api) -> None:
    user, secret, _ = await _enabled(api, "ann@x.io")
    assert (await user.ok("GET", "/api/user"))["passcode_enabled"] is True
    login = {"email": "ann@x.io", "password": PASSWORD}
    status, body = await api.call("POST", "/api/login", login)
    assert_error(status, body, 401, "passcode_required")
    wrong = f"{(int(totp(secret)) + 1) % 1_000_000:06d}"
    status, body = await api.call("POST", "/api/login", {**login, "passcode": wrong})
    assert_error(status, body, 401, "passcode_required")
    # The code of the next step is within the window and newer than the one that
    # confirmed the set-up, so it is accepted, once.
    code = totp(secret, time.time() + 30)
    tokens = await api.ok("POST", "/api/login", {**login, "passcode": code})
    assert tokens["user"]["passcode_enabled"] is True
    status, body = await api.call("POST", "/api/login", {**login, "passcode": code})
    assert_error(status, body, 401, "passcode_required")
    # A wrong password says nothing about the passcode.
    status, body = await api.call(
        "POST", "/api/login", {"email": "ann@x.io", "password": "nope nope", "passcode": code}
    )
    assert_error(status, body, 401, "invalid_credentials")


async def test_recovery_code_works_once(api: Api) -> None:
    _, _, codes = await _enabled(api, "rec@x.io")
    login = {"email": "rec@x.io", "password": PASSWORD}
    await api.ok("POST", "/api/login", {**login, "passcode": codes[0].upper()})
    status, body = await api.call("POST", "/api/login", {**login, "passcode": codes[0]})
    assert_error(status, body, 401, "passcode_required")
    await api.ok("POST", "/api/login", {**login, "passcode": codes[1].replace("-", "")})


async def test_set_up_rules_and_removal(api: Api) -> None:
    user = await api.sign_up("rm@x.io", PASSWORD)
    status, body = await user.call("POST", "/api/user/passcode", {"code": "123456"})
    assert_error(status, body, 409, "passcode_not_started")
    status, body = await user.call("DELETE", "/api/user/passcode", {"code": "123456"})
    assert_error(status, body, 409, "passcode_not_enabled")
    user, secret, codes = await _enabled(api, "rm2@x.io")
    status, body = await user.call("POST", "/api/user/passcode", {})
    assert_error(status, body, 409, "passcode_enabled")
    fresh = await user.ok(
        "POST", "/api/user/passcode/recovery-codes", {"code": totp(secret, time.time() + 30)}
    )
    assert not set(fresh["recovery_codes"]) & set(codes)  # the old ones stop working
    status, body = await user.call("DELETE", "/api/user/passcode", {"code": codes[2]})
    assert_error(status, body, 422, "invalid_passcode")
    status, _ = await user.call(
        "DELETE", "/api/user/passcode", {"code": fresh["recovery_codes"][0]}
    )
    assert status == 204
    await api.ok("POST", "/api/login", {"email": "rm2@x.io", "password": PASSWORD})
    assert (await user.ok("GET", "/api/user"))["passcode_enabled"] is False


async def test_body_validation(api: Api) -> None:
    user = await api.sign_up("v@x.io", PASSWORD)
    status, body = await user.call("POST", "/api/user/passcode", {"code": 123456, "x": 1})
    assert_error(status, body, 400, "invalid_request")


async def _stored_secret(settings: HubSettings, email: str) -> str | None:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            return await s.scalar(select(User.passcode_secret).where(User.email == email))
    finally:
        await db.close()


async def test_secrets_are_sealed_at_rest(make_api: MakeApi, settings: HubSettings) -> None:
    api = await make_api()
    user, secret, _ = await _enabled(api, "sealed@x.io")
    user_id = (await user.ok("GET", "/api/user"))["id"]
    stored = await _stored_secret(settings, "sealed@x.io")
    assert stored and secret not in stored and secret.lower() not in stored.lower()
    # A copy of the database without the hub's key opens nothing...
    with pytest.raises(RuntimeError):
        SecretBox("the key of some other hub").open(user_id, stored)
    # ...and the hub itself signs in with codes of that secret.
    await _sign_in_with(api, "sealed@x.io", totp(secret, time.time() + 30))


async def test_plaintext_secrets_are_sealed_when_the_hub_starts(
    make_api: MakeApi, settings: HubSettings
) -> None:
    api = await make_api()
    _, secret, _ = await _enabled(api, "old@x.io")
    db = Database(settings.effective_database_url)
    try:  # as a hub before sealing stored it
        async with db.session() as s:
            await s.execute(
                update(User).where(User.email == "old@x.io").values(passcode_secret=secret)
            )
            await s.commit()
    finally:
        await db.close()
    restarted = await make_api()  # a hub starting on this database
    stored = await _stored_secret(settings, "old@x.io")
    assert stored and stored != secret and len(stored) == 64
    await _sign_in_with(restarted, "old@x.io", totp(secret, time.time() + 30))


async def _sign_in_with(api: Api, email: str, code: str) -> None:
    body = {"email": email, "password": PASSWORD, "passcode": code}
    await api.ok("POST", "/api/login", body)
