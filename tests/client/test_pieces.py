"""The client's pure parts, with no hub: escape sequences, recordings and their
playback, formatting, error mapping, terminal messages, credentials and their file."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from client.auth import Credentials
from client.cli.connect import ssh_config_text
from client.config import ClientSettings, CredentialsFile, resolve_hub
from client.errors import (
    ConnectionLost,
    InvalidCredentials,
    InvalidRequest,
    NotFound,
    OtherStatus,
    PasscodeRequired,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    error_from_answer,
    error_from_close,
)
from client.escape import Action, EscapeFilter
from client.models import Agent, Container, Session
from client.output import agents_table, ago, containers_table, duration, sessions_table, size, table
from client.player import InvalidRecording, parse_cast, play, schedule
from client.terminal import (
    ErrorMessage,
    Exited,
    OtherMessage,
    Participants,
    SessionStarted,
    decode_event,
    terminal_path,
)
from client.transport import normalize_hub, ws_base

pytestmark = pytest.mark.backend_independent  # scripts/test.sh runs it in one pass

# -- escape sequences ------------------------------------------------------------------


def test_tilde_dot_at_line_start_detaches_and_drops_the_rest() -> None:
    f = EscapeFilter()
    assert f.feed(b"ls\r").data == b"ls\r"
    fed = f.feed(b"~.rm -rf /\r")
    assert fed.detach and fed.data == b""


def test_tilde_dot_at_the_very_start_detaches() -> None:
    assert EscapeFilter().feed(b"~.").detach


def test_tilde_dot_split_across_reads() -> None:
    f = EscapeFilter()
    assert f.feed(b"\n~").data == b"\n"
    assert f.feed(b".").detach


def test_tilde_inside_a_line_is_plain() -> None:
    f = EscapeFilter()
    fed = f.feed(b"cd ~.\r")
    assert not fed.detach and fed.data == b"cd ~.\r"


def test_double_tilde_sends_one_and_other_chars_pass() -> None:
    f = EscapeFilter()
    assert f.feed(b"~~x\r").data == b"~x\r"
    assert f.feed(b"~a").data == b"~a"


def test_help_escape_and_disabled_filter() -> None:
    fed = EscapeFilter().feed(b"~?")
    assert fed.actions == (Action.HELP,) and fed.data == b""
    assert EscapeFilter(enabled=False).feed(b"~.").data == b"~."


def test_binary_input_passes_unchanged() -> None:
    data = bytes(range(256)).replace(b"~", b"")
    assert EscapeFilter().feed(data).data == data


# -- recordings ------------------------------------------------------------------------

CAST = "\n".join(
    [
        json.dumps({"version": 2, "width": 80, "height": 24, "idle_time_limit": 2.0}),
        json.dumps([0.5, "o", "$ "]),
        json.dumps([1.0, "i", "e"]),
        json.dumps([1.5, "o", "echo hi\r\n"]),
        json.dumps([11.5, "o", "hi\r\n"]),
        json.dumps([11.75, "r", "100x30"]),
        json.dumps([12.0, "o", "ünï\r\n"]),
    ]
)


def test_parse_cast(tmp_path: Path) -> None:
    path = tmp_path / "demo.cast"
    path.write_text(CAST + "\n")
    rec = parse_cast(path.read_bytes())
    assert rec.header.width == 80 and rec.header.idle_time_limit == 2.0
    assert [e.kind for e in rec.events] == ["o", "i", "o", "o", "r", "o"]
    assert rec.output() == "$ echo hi\r\nhi\r\nünï\r\n"
    assert rec.duration == 12.0


@pytest.mark.parametrize(
    "text",
    ["", "not json", json.dumps({"version": 1}), json.dumps({"version": 2}) + "\n[1, 2]"],
)
def test_invalid_recordings(text: str) -> None:
    with pytest.raises(InvalidRecording):
        parse_cast(text)


def test_schedule_speed_and_idle_limit() -> None:
    rec = parse_cast(CAST)
    plain = list(schedule(rec.events))
    assert [round(d, 3) for d, _ in plain] == [0.5, 1.0, 10.0, 0.5]
    fast = list(schedule(rec.events, speed=2, idle_time_limit=2.0))
    assert [round(d, 3) for d, _ in fast] == [0.25, 0.5, 1.0, 0.25]
    with pytest.raises(ValueError):
        list(schedule(rec.events, speed=0))


async def test_play_writes_output_with_the_schedule() -> None:
    rec = parse_cast(CAST)
    waits: list[float] = []
    written: list[bytes] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))

    await play(rec, written.append, speed=4, sleep=sleep)  # header's idle limit: 2 s
    assert b"".join(written).decode() == rec.output()
    assert waits == [0.125, 0.25, 0.5, 0.125]
    waits.clear()
    await play(rec, written.append, idle_time_limit=0.5, sleep=sleep)
    assert waits == [0.5, 1.0, 0.5, 0.5]  # gaps capped one by one, input events too


# -- formatting ------------------------------------------------------------------------

NOW = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)


def test_table_and_units() -> None:
    assert table(["A", "BB"], [["xxx", "y"], ["z", ""]]) == "A    BB\nxxx  y\nz"
    assert ago(NOW - timedelta(seconds=42), NOW) == "42s ago"
    assert ago(NOW + timedelta(hours=3, minutes=5), NOW) == "in 3h"
    assert ago(None, NOW) == "-"
    assert duration(185) == "3m05s" and duration(7260) == "2h01m" and duration(5) == "5s"
    assert size(512) == "512 B" and size(1536) == "1.5 KiB" and size(3 << 20) == "3.0 MiB"


def test_listings() -> None:
    c = Container.from_json(
        {
            "id": "ctr_1",
            "name": "box",
            "image": "rexec/busybox:1",
            "status": "running",
            "created_at": "2026-11-23T20:29:00Z",
            "expires_at": "2026-11-24T04:30:00Z",
            "limits": {"cpus": 1.0},
        }
    )
    assert containers_table([c], NOW).splitlines()[1].split() == [
        "ctr_1", "box", "rexec/busybox:1", "running", "1m", "ago", "in", "8h",
    ]  # fmt: skip
    a = Agent.from_json(
        {
            "id": "agt_1",
            "name": "web",
            "hostname": "web1",
            "status": "online",
            "last_seen": "2026-11-23T20:29:50Z",
            "metrics": {"cpu_percent": 12.4, "memory_percent": 50, "disk_percent": 7, "load1": 0.5},
        }
    )
    row = agents_table([a], NOW).splitlines()[1].split()
    assert row == ["agt_1", "web", "web1", "online", "12%", "50%", "7%", "0.50", "10s", "ago"]
    s = Session.from_json(
        {
            "id": "ses_1",
            "target": "ctr_1",
            "owner": "usr_1",
            "status": "ended",
            "started_at": "2026-11-23T20:00:00Z",
            "ended_at": "2026-11-23T20:02:05Z",
            "participants": [],
            "recording": {"available": True, "bytes": 2048, "duration": 125.0},
        }
    )
    row = sessions_table([s], NOW).splitlines()[1].split()
    assert row == ["ses_1", "ctr_1", "ended", "30m", "ago", "2m05s", "0", "2.0", "KiB"]
    assert s.recording.available and not s.live


def test_ssh_config_text() -> None:
    c = Container.from_json({"id": "ctr_1", "name": "my box"})
    a = Agent.from_json({"id": "agt_2", "name": ""})
    text = ssh_config_text("https://hub.example.com:8443", [c, a], identity="~/.ssh/rx")
    assert "Host rexec-my-box\n    HostName hub.example.com\n    Port 2222\n    User ctr_1" in text
    assert "Host rexec-agt_2" in text and "IdentityFile ~/.ssh/rx" in text


# -- errors ----------------------------------------------------------------------------


def _body(code: str, message: str = "m") -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


def test_errors_by_status_and_code() -> None:
    err = error_from_answer(401, _body("invalid_credentials", "Wrong email or password."))
    assert isinstance(err, InvalidCredentials) and isinstance(err, Unauthorized)
    assert err.code == "invalid_credentials" and err.message == "Wrong email or password."
    assert isinstance(error_from_answer(401, _body("passcode_required")), PasscodeRequired)
    assert type(error_from_answer(401, _body("token_expired"))) is Unauthorized
    bad = error_from_answer(
        400, {"error": {"code": "invalid_request", "message": "m", "details": {"field": "x"}}}
    )
    assert isinstance(bad, InvalidRequest) and bad.details == {"field": "x"}
    missing = error_from_answer(404, _body("container_not_found"))
    assert isinstance(missing, NotFound) and missing.code == "container_not_found"
    limited = error_from_answer(429, _body("rate_limited"), retry_after="7")
    assert isinstance(limited, RateLimited) and limited.retry_after == 7
    assert isinstance(error_from_answer(503, _body("containers_unavailable")), Unavailable)
    assert isinstance(error_from_answer(502, "<html>", reason="Bad Gateway"), ServerError)
    other = error_from_answer(418, None, reason="I'm a teapot")
    assert isinstance(other, OtherStatus) and other.http_status == 418
    assert "418" in other.message


def test_errors_from_close_codes() -> None:
    err = error_from_close(4404, "target_not_found", "No such terminal target.")
    assert isinstance(err, NotFound) and err.code == "target_not_found"
    assert isinstance(error_from_close(4401, None, None), Unauthorized)
    assert isinstance(error_from_close(4008, None, None), ConnectionLost)
    assert isinstance(error_from_close(1006, None, None), ConnectionLost)


# -- terminal messages -----------------------------------------------------------------


def test_decode_events() -> None:
    started = decode_event('{"type":"session","id":"ses_1","role":"owner"}')
    assert started == SessionStarted("ses_1", "owner")
    assert decode_event('{"type":"exit","code":3}') == Exited(3)
    assert decode_event('{"type":"error","code":"x","message":"y"}') == ErrorMessage("x", "y")
    people = decode_event('{"type":"participants","participants":[{"id":"c1"}]}')
    assert people == Participants(({"id": "c1"},))
    other = decode_event('{"type":"approval","id":"apr_1"}')
    assert isinstance(other, OtherMessage) and other.data["id"] == "apr_1"


def test_terminal_path_and_urls() -> None:
    path = terminal_path("ctr_1", cols=100, rows=30, command="echo a&b")
    assert path == "/ws/terminal/ctr_1?cols=100&rows=30&command=echo+a%26b"
    assert terminal_path("agt_1", session="ses_2") == "/ws/terminal/agt_1?session=ses_2"
    assert normalize_hub("localhost:8080/") == "http://localhost:8080"
    assert ws_base("https://hub.example.com") == "wss://hub.example.com"
    with pytest.raises(ValueError):
        normalize_hub("ftp://x")


# -- credentials -----------------------------------------------------------------------


def test_credentials_refresh_rule() -> None:
    answer = {"access_token": "a", "refresh_token": "r", "expires_in": 900, "user": {"email": "e"}}
    creds = Credentials.from_login(answer, now=1000.0)
    assert creds.expires_at == 1900.0 and creds.email == "e" and creds.kind == "session"
    assert not creds.needs_refresh(1000.0)
    assert creds.needs_refresh(1871.0)  # within the leeway
    assert not Credentials("rx_token").needs_refresh(10**10)
    assert Credentials.from_json(creds.to_json()) == creds


def test_credentials_file_is_private(tmp_path: Path) -> None:
    file = CredentialsFile(tmp_path / "rexec")
    store = file.store("http://127.0.0.1:8080/")
    store.save(Credentials("a", "r", 5.0, "e@x"))
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.dir.stat().st_mode) == 0o700
    assert store.load() == Credentials("a", "r", 5.0, "e@x")
    assert file.default_hub() == "http://127.0.0.1:8080"
    other = file.store("http://other:1")
    other.save(Credentials("b"))
    assert file.default_hub() == "http://127.0.0.1:8080"  # only login moves the default
    file.set_default_hub("http://other:1")
    assert resolve_hub(None, ClientSettings(config_dir=tmp_path), file) == "http://other:1"
    store.acquire()
    store.release()
    store.save(None)
    assert store.load() is None and file.hubs() == ["http://other:1"]
