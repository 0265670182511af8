"""Acceptance for sessions that last: sharing, resume across a dropped agent link and
a hub restart, slow viewers, recordings, and isolation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from hub.db.models import SessionShare
from tests.e2e.conftest import RunningAgent, register_agent, start_agent
from tests.e2e.test_terminal import read_until
from tests.support import BIN, Api, Hub, TcpProxy, assert_error, rss_of, wait_for

MiB = 1 << 20
PASSCODE = "s3cret-pass"


def url(hub: Hub, target: str, **query: str | int) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{hub.port}/ws/terminal/{target}?{q}"


async def first_message(ws: ClientConnection) -> dict[str, Any]:
    msg = json.loads(await ws.recv())
    assert msg["type"] == "session"
    return msg


async def live_session(owner: Api, target: str) -> str:
    sessions = (await owner.ok("GET", "/api/sessions"))["sessions"]
    live = [s for s in sessions if s["target"] == target and s["status"] == "live"]
    assert live, sessions
    return str(live[0]["id"])


# ---- sharing -------------------------------------------------------------------


async def test_share_roles_passcodes_and_revocation(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    async with connect(url(hub, agent.id, token=owner.token), compression=None) as own:
        sid = (await first_message(own))["id"]
        viewer_share = await owner.ok(
            "POST", f"/api/sessions/{sid}/share", {"role": "viewer", "passcode": PASSCODE}, 201
        )
        token = viewer_share["share"]["token"]
        assert viewer_share["url"].endswith(token)
        # A wrong or missing passcode is refused before the upgrade.
        for query in ({"share": token}, {"share": token, "passcode": "wrong"}):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(hub, agent.id, **query)):
                    pass
            assert refused.value.response.status_code == 401
        async with connect(
            url(hub, agent.id, share=token, passcode=PASSCODE), compression=None
        ) as viewer:
            joined = await first_message(viewer)
            assert joined["role"] == "viewer" and joined["id"] == sid
            # The viewer's keystrokes never reach the shell.
            await viewer.send(b"echo VIEWER-$((2+2))\n")
            await own.send(b"echo OWNER-$((3+3))\n")
            mine = await read_until(own, b"OWNER-6\r\n")
            theirs = await read_until(viewer, b"OWNER-6\r\n")
            assert b"VIEWER-4" not in mine and b"VIEWER-4" not in theirs
            # Both see the same bytes from the point the viewer joined.
            tail = mine[mine.index(b"echo OWNER") :]
            assert theirs.endswith(tail)
            # Revoking the share closes the viewer's live socket.
            shares = (await owner.ok("GET", f"/api/sessions/{sid}/shares"))["shares"]
            status, _ = await owner.call("DELETE", f"/api/sessions/{sid}/shares/{shares[0]['id']}")
            assert status == 204
            with contextlib.suppress(ConnectionClosedError):
                async with asyncio.timeout(5):
                    async for _ in viewer:
                        pass
            assert viewer.close_code == 4403
        with pytest.raises(InvalidStatus) as revoked:
            async with connect(url(hub, agent.id, share=token, passcode=PASSCODE)):
                pass
        assert revoked.value.response.status_code == 403

        # A writer's keystrokes do reach the shell; an expired share is refused.
        writer_share = await owner.ok(
            "POST", f"/api/sessions/{sid}/share", {"role": "writer", "expires_in": 60}, 201
        )
        wtoken = writer_share["share"]["token"]
        async with connect(url(hub, agent.id, share=wtoken), compression=None) as writer:
            assert (await first_message(writer))["role"] == "writer"
            await writer.send(b"echo WRITER-$((4+4))\n")
            await read_until(own, b"WRITER-8\r\n")
        past = datetime.now(UTC) - timedelta(minutes=1)
        await hub.execute(update(SessionShare).values(expires_at=past))
        with pytest.raises(InvalidStatus) as expired:
            async with connect(url(hub, agent.id, share=wtoken)):
                pass
        assert expired.value.response.status_code == 403


async def test_weak_share_passcodes_are_refused(hub: Hub, owner: Api, agent: RunningAgent) -> None:
    assert owner.token
    async with connect(url(hub, agent.id, token=owner.token), compression=None) as own:
        sid = (await first_message(own))["id"]
        for weak in ("s3cret", "password", "12345678901", "aaaaaaaaaaaa1"):
            status, body = await owner.call(
                "POST", f"/api/sessions/{sid}/share", {"role": "writer", "passcode": weak}
            )
            assert_error(status, body, 400, "invalid_request")
            assert body["error"]["details"]["field"] == "passcode", body
        for strong in (PASSCODE, "correct horse battery", "Tr0ub4dor&3"):
            await owner.ok(
                "POST", f"/api/sessions/{sid}/share", {"role": "writer", "passcode": strong}, 201
            )


async def test_share_passcode_guesses_are_rate_limited(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    async with connect(url(hub, agent.id, token=owner.token), compression=None) as own:
        sid = (await first_message(own))["id"]
        made = await owner.ok(
            "POST", f"/api/sessions/{sid}/share", {"role": "writer", "passcode": PASSCODE}, 201
        )
        token = made["share"]["token"]
        other = await owner.ok(
            "POST", f"/api/sessions/{sid}/share", {"role": "viewer", "passcode": PASSCODE}, 201
        )

        async def guess(share: str, passcode: str) -> tuple[int, Any]:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(hub, agent.id, share=share, passcode=passcode)):
                    pass
            response = refused.value.response
            return response.status_code, response.headers

        # Ten wrong guesses a minute, then 429 with Retry-After: even the right passcode
        # learns nothing until the window has passed.
        for n in range(10):
            assert (await guess(token, f"wrong-guess-{n}"))[0] == 401
        status, headers = await guess(token, "wrong-guess-10")
        assert status == 429 and int(headers.get("Retry-After", 0)) >= 1, headers
        assert (await guess(token, PASSCODE))[0] == 429
        # The address is spent too, for the other share of the same session.
        assert (await guess(other["share"]["token"], PASSCODE))[0] == 429


async def test_an_expiring_share_ends_its_live_sockets(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    async with connect(url(hub, agent.id, token=owner.token), compression=None) as own:
        sid = (await first_message(own))["id"]
        made = await owner.ok(
            "POST", f"/api/sessions/{sid}/share", {"role": "writer", "expires_in": 60}, 201
        )
        async with connect(url(hub, agent.id, share=made["share"]["token"])) as writer:
            assert (await first_message(writer))["role"] == "writer"
            await writer.send(b"echo BEFORE-$((1+1))\n")
            await read_until(own, b"BEFORE-2\r\n")
            # The link's time is up (aged in the database, as a minute passing would).
            past = datetime.now(UTC) - timedelta(seconds=1)
            await hub.execute(update(SessionShare).values(expires_at=past))
            assert await wait_closed(writer) == 4403
        await own.send(b"echo OWNER-STAYS\n")
        await read_until(own, b"OWNER-STAYS\r\n")


async def test_participants_and_end_session(hub: Hub, owner: Api, agent: RunningAgent) -> None:
    assert owner.token
    async with connect(url(hub, agent.id, token=owner.token), compression=None) as own:
        sid = (await first_message(own))["id"]
        share = await owner.ok("POST", f"/api/sessions/{sid}/share", {}, 201)
        async with connect(url(hub, agent.id, share=share["share"]["token"])) as viewer:
            await first_message(viewer)

            async def two() -> bool:
                got = await owner.ok("GET", f"/api/sessions/{sid}")
                return len(got["participants"]) == 2

            await wait_for(two, 5, what="two participants")
        status, _ = await owner.call("DELETE", f"/api/sessions/{sid}")
        assert status == 204
        texts = []
        async with asyncio.timeout(10):
            async for msg in own:
                if isinstance(msg, str):
                    texts.append(json.loads(msg))
        assert texts[-1]["type"] == "exit" and own.close_code == 1000

    async def ended() -> bool:
        got = await owner.ok("GET", f"/api/sessions/{sid}")
        return bool(got["status"] == "ended" and got["ended_at"])

    await wait_for(ended, 10, what="the session recorded as ended")


# ---- surviving the network and the hub -------------------------------------------

LINES = 200_000


async def read_numbered(
    hub_port: int,
    target: str,
    token: str,
    *,
    interrupt: Any,
    at: int = 40_000,
    lines: int = LINES,
    with_offset: bool = True,
    session: list[str] | None = None,
) -> bytes:
    """Run `seq 1 lines`, call `interrupt()` once `at` lines have arrived, and keep
    reconnecting with ?session=&offset= (or, not `with_offset`, ?session= alone: the
    output then holds a replay twice) until the exit frame. `session` gets its id."""
    out = bytearray()
    session_id = None
    interrupted = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if session_id is None:
            address = (
                f"ws://127.0.0.1:{hub_port}/ws/terminal/{target}?token={token}"
                f"&command=seq%201%20{lines}"
            )
        else:
            address = (
                f"ws://127.0.0.1:{hub_port}/ws/terminal/{target}?token={token}"
                f"&session={session_id}" + (f"&offset={len(out)}" if with_offset else "")
            )
        try:
            async with (
                asyncio.timeout(deadline - time.monotonic()),
                connect(address, compression=None, max_size=None) as ws,
            ):
                hello = await first_message(ws)
                if session_id is None and session is not None:
                    session.append(hello["id"])
                session_id = hello["id"]
                assert not with_offset or hello["offset"] == len(out), (hello, len(out))
                async for msg in ws:
                    if isinstance(msg, bytes):
                        out += msg
                        if not interrupted and out.count(b"\n") >= at:
                            interrupted = True
                            await interrupt()
                    elif json.loads(msg)["type"] == "exit":
                        return bytes(out)
        except (OSError, InvalidStatus) as exc:
            if isinstance(exc, InvalidStatus):
                assert exc.response.status_code in (409, 502, 503), exc
            await asyncio.sleep(0.2)  # the hub is down or the session not taken up yet
        except TimeoutError:
            break
        except Exception as exc:  # the socket died with the hub
            if "ConnectionClosed" not in type(exc).__name__:
                raise
    raise AssertionError(f"no exit frame; {len(out)} bytes so far")


def assert_every_line_once(out: bytes | str, count: int = LINES) -> None:
    text = out.decode() if isinstance(out, bytes) else out
    lines = text.replace("\r\n", "\n").split("\n")
    assert lines[-1] == ""
    numbers = lines[:-1]
    if len(numbers) != count:  # say where: the first line missing or doubled
        wrong = next((i for i, n in enumerate(numbers) if n != str(i + 1)), None)
        raise AssertionError(f"{len(numbers)} lines of {count}; first wrong at index {wrong}")
    assert numbers == [str(i) for i in range(1, count + 1)]


async def test_hub_killed_mid_stream_every_line_once(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token
    restarted: list[Hub] = []

    async def kill_and_restart() -> None:
        hub.kill()  # SIGKILL
        restarted.append(await Hub(hub.data_dir, port=hub.port).start())

    try:
        out = await read_numbered(hub.port, agent.id, owner.token, interrupt=kill_and_restart)
    finally:
        for h in restarted:
            h.kill()
    assert restarted
    assert_every_line_once(out)


async def test_agent_link_cut_for_10s_every_line_once(hub: Hub, owner: Api, tmp_path: Path) -> None:
    assert owner.token
    proxy = await TcpProxy(hub.port).start()
    config = tmp_path / "agent.toml"
    via_proxy = Hub(hub.data_dir, port=proxy.port)
    via_proxy.url = f"http://127.0.0.1:{proxy.port}"
    agent_id = await register_agent(via_proxy, owner, config)
    proc = await start_agent(owner, agent_id, config)
    try:

        async def cut_for_10s() -> None:
            await proxy.cut()

            async def offline() -> bool:
                return (await owner.ok("GET", f"/api/agents/{agent_id}"))["status"] == "offline"

            await wait_for(offline, 5, what="the hub saw the link drop")
            await asyncio.sleep(10)  # the link stays down for 10 s: that is the test
            await proxy.restore()

        out = await read_numbered(hub.port, agent_id, owner.token, interrupt=cut_for_10s)
        assert_every_line_once(out)
        assert proc.popen.poll() is None  # the agent process stayed up throughout
    finally:
        proc.kill()
        await proxy.close()


# ---- slow viewers --------------------------------------------------------------------

FLOOD = "head%20-c%2040000000%20/dev/zero%20|%20tr%20%27\\0%27%20y"


async def flood_rate(ws: ClientConnection) -> float:
    """MB/s of output until the exit frame."""
    got, started = 0, time.monotonic()
    async with asyncio.timeout(60):
        async for msg in ws:
            if isinstance(msg, bytes):
                got += len(msg)
            elif json.loads(msg)["type"] == "exit":
                break
    return got / (time.monotonic() - started) / 1e6


async def test_viewer_that_never_reads_does_not_slow_the_owner(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    assert owner.token and hub.proc
    async with connect(url(hub, agent.id, token=owner.token, command=FLOOD)) as solo:
        await first_message(solo)
        solo_rate = await flood_rate(solo)
    rss_before = rss_of(hub.proc.pid)
    # The same flood with a viewer that never reads: start the program paused on a
    # prompt so the viewer is attached before the output begins.
    script = f"read go; {FLOOD.replace('%20', ' ').replace('%27', chr(39))}"
    command = script.replace(" ", "%20").replace("'", "%27").replace(";", "%3B")
    async with connect(url(hub, agent.id, token=owner.token, command=command)) as own:
        sid = (await first_message(own))["id"]
        share = await owner.ok("POST", f"/api/sessions/{sid}/share", {}, 201)
        async with connect(
            url(hub, agent.id, share=share["share"]["token"]), max_queue=1, compression=None
        ) as stuck:
            await first_message(stuck)
            await own.send(b"\n")
            shared_rate = await flood_rate(own)
            rss_peak = rss_of(hub.proc.pid)
    assert shared_rate > solo_rate / 2, (solo_rate, shared_rate)
    # Stated bound: one client queue (1 MiB) and one window per session, plus slack.
    assert rss_peak - rss_before < 48 * MiB, (rss_before, rss_peak)


# ---- recordings ------------------------------------------------------------------------


def asciinema_cat(path: Path) -> str:
    """asciinema's own player, under a real pty (it insists on a terminal)."""
    out = subprocess.run(
        ["script", "-qec", f"{BIN / 'asciinema'} cat {path}", "/dev/null"],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.decode(errors="replace").replace("\r", "")


async def download(api: Api, sid: str, dest: Path) -> Path:
    async with api.http.get(f"{api.base}/api/sessions/{sid}/recording", headers=api.headers()) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("application/x-asciicast")
        dest.write_bytes(await r.read())
    return dest


async def test_recording_plays_in_asciinema(
    hub: Hub, owner: Api, agent: RunningAgent, tmp_path: Path
) -> None:
    assert owner.token
    command = "printf%20%27h%C3%A9llo%20%E2%9C%93%5Cn%27%3B%20seq%201%202000"
    out = b""
    async with connect(url(hub, agent.id, token=owner.token, command=command)) as ws:
        sid = (await first_message(ws))["id"]
        async for msg in ws:
            if isinstance(msg, bytes):
                out += msg
    listed = await owner.ok("GET", f"/api/sessions/{sid}")
    assert listed["recording"]["available"] and listed["recording"]["bytes"] > 0
    cast = await download(owner, sid, tmp_path / "s.cast")
    header = json.loads(cast.read_text().splitlines()[0])
    assert header["version"] == 2 and header["width"] == 80
    played = asciinema_cat(cast)
    assert played == out.decode().replace("\r", "")
    assert "héllo ✓" in played

    # Once the recorder has closed the file, its size is on record and counts in usage.
    async def metered() -> int:
        usage = await owner.ok("GET", "/api/billing/usage")
        return int(usage["usage"]["recording_bytes"])

    try:
        recorded = await wait_for(metered, 20, what="recording bytes in usage")
    except AssertionError:  # say what the hub said (this has failed under heavy load)
        assert hub.proc is not None
        raise AssertionError("".join(hub.proc.lines[-40:])) from None
    final = await download(owner, sid, tmp_path / "final.cast")
    assert recorded == final.stat().st_size
    assert (await owner.ok("GET", f"/api/sessions/{sid}"))["recording"]["bytes"] == recorded


async def test_recording_survives_hub_kill(
    hub: Hub, owner: Api, agent: RunningAgent, tmp_path: Path
) -> None:
    assert owner.token
    ws = await connect(url(hub, agent.id, token=owner.token), compression=None)
    sid = (await first_message(ws))["id"]
    await ws.send(b"for i in $(seq 1 50); do echo line-$i; done\n")
    await read_until(ws, b"line-50\r\n")
    await asyncio.sleep(0.5)  # let the recorder's last write land before the kill
    hub.kill()
    await ws.close()
    restarted = await Hub(hub.data_dir, port=hub.port).start()
    try:
        played = asciinema_cat(await download(owner, sid, tmp_path / "k.cast"))
        numbers = re.findall(r"line-(\d+)\n", played)
        assert numbers == [str(i) for i in range(1, 51)]
    finally:
        restarted.kill()


# ---- isolation --------------------------------------------------------------------------


async def test_other_users_get_404_on_sessions(hub: Hub, owner: Api, agent: RunningAgent) -> None:
    assert owner.token
    async with connect(url(hub, agent.id, token=owner.token), compression=None) as own:
        sid = (await first_message(own))["id"]
        other = await Api(owner.http, owner.base).sign_up("other@example.com")
        for method, path, body in (
            ("GET", f"/api/sessions/{sid}", None),
            ("DELETE", f"/api/sessions/{sid}", None),
            ("POST", f"/api/sessions/{sid}/share", {"role": "writer"}),
            ("GET", f"/api/sessions/{sid}/shares", None),
            ("GET", f"/api/sessions/{sid}/recording", None),
            ("GET", "/api/sessions/ses_doesnotexist", None),
        ):
            status, answer = await other.call(method, path, body)
            assert_error(status, answer, 404)
        assert (await other.ok("GET", "/api/sessions"))["sessions"] == []
        assert other.token
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(hub, agent.id, token=other.token, session=sid)):
                pass
        assert refused.value.response.status_code == 404


# ---- access ends, the socket ends -------------------------------------------------------


async def wait_closed(ws: ClientConnection) -> int | None:
    with contextlib.suppress(ConnectionClosedError):
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
    return ws.close_code


async def test_sign_out_and_token_revocation_close_live_sockets(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    signed_in = await owner.ok(
        "POST", "/api/login", {"email": "owner@example.com", "password": "correct horse 1"}
    )
    other_sign_in = await owner.ok(
        "POST", "/api/login", {"email": "owner@example.com", "password": "correct horse 1"}
    )
    api_token = await owner.ok("POST", "/api/user/tokens", {"name": "ci"}, 201)
    by_login = await connect(url(hub, agent.id, token=signed_in["access_token"]))
    by_other = await connect(url(hub, agent.id, token=other_sign_in["access_token"]))
    by_token = await connect(url(hub, agent.id, token=api_token["token"]))
    for ws in (by_login, by_other, by_token):
        await first_message(ws)
    status, _ = await owner.call(
        "POST", "/api/logout", {"refresh_token": signed_in["refresh_token"]}
    )
    assert status == 204
    assert await wait_closed(by_login) == 4401
    status, _ = await owner.call("DELETE", f"/api/user/tokens/{api_token['id']}")
    assert status == 204
    assert await wait_closed(by_token) == 4401
    # The other sign-in is untouched.
    await by_other.send(b"echo still-$((5+5))\n")
    await read_until(by_other, b"still-10")
    await by_other.close()


async def test_a_reused_refresh_token_closes_its_sign_ins_terminals(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    login = {"email": "owner@example.com", "password": "correct horse 1"}
    stolen = await owner.ok("POST", "/api/login", login)
    bystander = await owner.ok("POST", "/api/login", login)
    rotated = await owner.ok("POST", "/api/refresh", {"refresh_token": stolen["refresh_token"]})
    by_old = await connect(url(hub, agent.id, token=stolen["access_token"]))
    by_new = await connect(url(hub, agent.id, token=rotated["access_token"]))
    by_bystander = await connect(url(hub, agent.id, token=bystander["access_token"]))
    for ws in (by_old, by_new, by_bystander):
        await first_message(ws)
    status, body = await owner.call(
        "POST", "/api/refresh", {"refresh_token": stolen["refresh_token"]}
    )
    assert_error(status, body, 401, "token_reused")
    assert await wait_closed(by_old) == 4401
    assert await wait_closed(by_new) == 4401
    await by_bystander.send(b"echo still-$((6+6))\n")
    await read_until(by_bystander, b"still-12")
    await by_bystander.close()


async def test_sign_out_everywhere_can_revoke_api_tokens(
    hub: Hub, owner: Api, agent: RunningAgent
) -> None:
    login = {"email": "owner@example.com", "password": "correct horse 1"}
    first = await owner.ok("POST", "/api/login", login)
    # A person's token: an agent's would watch read-only under the default policy.
    api_token = await owner.ok("POST", "/api/user/tokens", {"name": "ci", "kind": "person"}, 201)
    by_token = await connect(url(hub, agent.id, token=api_token["token"]))
    await first_message(by_token)
    as_token = Api(owner.http, owner.base, api_token["token"])
    # Everywhere, without revoke_tokens: sign-ins end, the API token keeps working.
    signed_in = Api(owner.http, owner.base, first["access_token"])
    await signed_in.ok("POST", "/api/logout", {"everywhere": True}, 204)
    status, _ = await signed_in.call("GET", "/api/user")
    assert status == 401
    await as_token.ok("GET", "/api/user")
    await by_token.send(b"echo token-$((7+7))\n")
    await read_until(by_token, b"token-14")
    # With revoke_tokens (from a fresh sign-in's refresh token): the token and its
    # socket end too.
    second = await owner.ok("POST", "/api/login", login)
    body = {"refresh_token": second["refresh_token"], "everywhere": True, "revoke_tokens": True}
    status, _ = await owner.call("POST", "/api/logout", body)
    assert status == 204
    assert await wait_closed(by_token) == 4401
    status, answer = await as_token.call("GET", "/api/user")
    assert_error(status, answer, 401, "invalid_token")
    status, _ = await Api(owner.http, owner.base, second["access_token"]).call("GET", "/api/user")
    assert status == 401
