"""The SDK against a real hub: typed results and errors, token refresh, terminals."""

from __future__ import annotations

import asyncio
import socket

import pytest

from client.auth import Credentials, MemoryStore
from client.errors import (
    HubUnreachable,
    InvalidCredentials,
    InvalidRequest,
    NotFound,
    NotSignedIn,
    Unauthorized,
)
from client.models import ExecResult
from client.sdk import AsyncClient
from client.sync import Client
from client.terminal import Exited, SessionStarted
from tests.client.conftest import EMAIL, PASSWORD, Agent
from tests.support import Api, Hub, wait_for


async def test_login_user_and_typed_results(chub: Hub, alice: Api) -> None:
    async with AsyncClient(chub.url) as rx:
        user = await rx.login(EMAIL, PASSWORD)
        assert user.email == EMAIL and user.id.startswith("usr_")
        assert rx.credentials is not None and rx.credentials.refresh_token
        me = await rx.user()
        assert me == user and me.created_at is not None
        box = await rx.containers.create(name="sdkbox")
        assert box.id.startswith("ctr_") and box.status == "running" and box.limits
        assert [c.id for c in await rx.containers.list()] == [box.id]
        assert (await rx.containers.get(box.id)).name == "sdkbox"
        result = await rx.containers.exec(box.id, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert isinstance(result, ExecResult)
        assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
        fed = await rx.containers.exec(box.id, "cat", stdin="fed")
        assert isinstance(fed, ExecResult) and fed.stdout == "fed"
        token = await rx.agents.create_token(name="later")
        assert token.token and "install.sh" in token.install_command
        await rx.containers.delete(box.id)
        assert await rx.containers.list() == []


async def test_errors_carry_the_hub_code_and_message(chub: Hub, alice: Api) -> None:
    async with AsyncClient(chub.url) as rx:
        with pytest.raises(InvalidCredentials) as wrong:
            await rx.login(EMAIL, "not the password")
        assert wrong.value.code == "invalid_credentials" and wrong.value.message
        with pytest.raises(NotSignedIn):
            await rx.user()
        await rx.login(EMAIL, PASSWORD)
        with pytest.raises(NotFound) as missing:
            await rx.containers.get("ctr_nope")
        assert missing.value.status == 404 and missing.value.code
        with pytest.raises(InvalidRequest) as bad:
            await rx.containers.create(cpus=-1)
        assert bad.value.details and bad.value.details["field"] == "cpus"
    async with AsyncClient(chub.url, token="rx_not_a_token") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.user()


async def test_hub_down_is_hub_unreachable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with AsyncClient(f"http://127.0.0.1:{port}", token="x") as rx:
        with pytest.raises(HubUnreachable, match="Cannot reach the hub"):
            await rx.user()
        with pytest.raises(HubUnreachable):
            await rx.attach("ctr_x")


async def test_refresh_after_401_happens_once_for_concurrent_calls(chub: Hub, alice: Api) -> None:
    async with AsyncClient(chub.url) as first:
        await first.login(EMAIL, PASSWORD)
        good = first.credentials
    assert good is not None and good.refresh_token
    # An access token the hub refuses, and a refresh token that still works.
    store = MemoryStore(Credentials("not-a-jwt", good.refresh_token, None, EMAIL))
    async with AsyncClient(chub.url, store=store) as rx:
        users = await asyncio.gather(*(rx.user() for _ in range(5)))
        assert {u.email for u in users} == {EMAIL}
        fresh = store.load()
        assert fresh is not None and fresh.refresh_token != good.refresh_token
        # Had two calls refreshed, the reuse would have revoked the family: it still works.
        await rx.transport.refresh(fresh)
        assert (await rx.user()).email == EMAIL


async def test_refresh_before_expiry(chub: Hub, alice: Api) -> None:
    async with AsyncClient(chub.url) as first:
        await first.login(EMAIL, PASSWORD)
        good = first.credentials
    assert good is not None and good.expires_at is not None
    later = good.expires_at + 1  # a clock past the access token's expiry
    store = MemoryStore(good)
    async with AsyncClient(chub.url, store=store, clock=lambda: later) as rx:
        await rx.user()
        renewed = store.load()
        assert renewed is not None and renewed.refresh_token != good.refresh_token


async def test_revoked_refresh_token_asks_to_sign_in_again(chub: Hub, alice: Api) -> None:
    async with AsyncClient(chub.url) as first:
        await first.login(EMAIL, PASSWORD)
        good = first.credentials
        await first.logout()
        assert first.credentials is None
    assert good is not None
    store = MemoryStore(Credentials("not-a-jwt", good.refresh_token, None, EMAIL))
    async with AsyncClient(chub.url, store=store) as rx:
        with pytest.raises(Unauthorized, match="sign in again"):
            await rx.user()


async def test_terminal_output_resize_and_exit(sdk: AsyncClient, container: str) -> None:
    events: list[object] = []
    async with await sdk.attach(container, cols=90, rows=20, on_event=events.append) as term:
        assert term.session_id.startswith("ses_") and term.role == "owner"
        assert isinstance(events[0], SessionStarted)
        seen = b""

        async def read_until(needle: bytes) -> None:
            nonlocal seen
            async with asyncio.timeout(15):
                async for chunk in term:
                    seen += chunk
                    if needle in seen:
                        return
            raise AssertionError(f"no {needle!r} in {seen!r}")

        await term.send(b"stty size\n")
        await read_until(b"20 90")
        await term.resize(120, 40)
        await term.send(b"echo $((6*7)); stty size\n")
        await read_until(b"40 120")
        assert b"42" in seen
        await term.send(b"exit 5\n")
        assert await asyncio.wait_for(term.wait(), 15) == 5
    assert isinstance(events[-1], Exited) and term.exit_code == 5


async def test_run_a_command_and_unknown_targets(
    sdk: AsyncClient, container: str, agent: Agent
) -> None:
    # On an agent: a container exec that exits at once races the hub's first resize.
    out, code = await asyncio.wait_for(sdk.run(agent.id, "echo hello; exit 7"), 20)
    assert b"hello" in out and code == 7
    online = await sdk.agents.get(agent.id)
    assert online.online and online.hostname
    with pytest.raises(NotFound) as missing:
        await sdk.attach("ctr_doesnotexist")
    assert missing.value.code
    with pytest.raises(NotFound):
        await sdk.resolve_target("no-such-name")
    assert await sdk.resolve_target("sandbox") == container
    assert await sdk.resolve_target(agent.id) == agent.id


async def test_sync_facade(chub: Hub, alice: Api, container: str) -> None:
    def script() -> tuple[str, int, bytes, int | None]:
        with Client(chub.url) as rx:
            rx.login(EMAIL, PASSWORD)
            result = rx.containers.exec(container, ["sh", "-c", "exit 4"])
            assert isinstance(result, ExecResult)
            # The command waits for a line: a program that exits at once races the hub's
            # first resize of a container exec (answered 503 by the hub today).
            with rx.attach(container, command="read word; echo synced-$word") as term:
                term.send(b"ok\n")
                out = b"".join(term)
            return rx.user().email, result.exit_code, out, term.exit_code

    email, code, out, exit_code = await asyncio.to_thread(script)
    assert (email, code, exit_code) == (EMAIL, 4, 0)
    assert b"synced-ok" in out


async def test_sessions_are_listed_after_a_terminal(sdk: AsyncClient, container: str) -> None:
    async with await sdk.attach(container) as term:
        await term.send(b"echo recorded-line; exit 0\n")
        assert await asyncio.wait_for(term.wait(), 15) == 0

    async def listed() -> object:
        return [s for s in await sdk.sessions.list() if s.target == container]

    sessions = await wait_for(listed, 15, what="the session in GET /api/sessions")
    assert isinstance(sessions, list)
    got = await sdk.sessions.get(sessions[0].id)
    assert got.id == sessions[0].id and got.target == container
