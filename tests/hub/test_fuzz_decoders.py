"""Property-based fuzzing of the hub's other untrusted inputs: the terminal WebSocket's
text frames, and what an SSH client sends the gateway (target name, environment,
terminal type and size, exec command), through a real SSH client. Only the documented
errors come back; nothing is logged as an error. Settings: tests/fuzzing.py."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import pytest
from aiohttp.test_utils import TestServer
from asyncssh.saslprep import SASLPrepError, saslprep
from hypothesis import given
from hypothesis import strategies as st

from common.errors import InvalidRequest
from hub.api.terminal import ResizeMessage, parse_control
from hub.ssh.throttle import SourceThrottle
from hub.state import SSH
from tests.fuzzing import fuzz_settings, json_objects, json_values
from tests.support import Api

texts = (
    st.text(max_size=200)
    | json_objects(["type", "cols", "rows"]).map(bytes.decode)
    | st.builds(
        lambda cols, rows, extra: json.dumps(
            {"type": "resize", "cols": cols, "rows": rows, **extra}
        ),
        json_values,
        json_values,
        st.dictionaries(st.text(max_size=5), json_values, max_size=2),
    )
)


@fuzz_settings(1000)
@given(texts)
def test_terminal_text_frames_give_a_resize_or_invalid_request(text: str) -> None:
    try:
        message = parse_control(text)
    except InvalidRequest as err:
        assert err.message and err.status == 400
        return
    assert isinstance(message, ResizeMessage) and 1 <= message.cols <= 1000


@pytest.fixture
async def ssh_client(api: Api, hub_server: TestServer) -> AsyncIterator[dict[str, Any]]:
    """Connection options of a user with a registered key; the gateway's per-address
    throttle opened wide, since every example is a new connection from 127.0.0.1."""
    user = await api.sign_up("fuzz@example.com")
    key = asyncssh.generate_private_key("ssh-ed25519")
    public = key.export_public_key().decode()
    await user.ok("POST", "/api/user/keys", {"name": "fuzz", "public_key": public}, 201)
    gateway = hub_server.app[SSH]
    gateway.throttle = SourceThrottle(burst=1 << 30, rate=1e9)
    yield {
        "host": "127.0.0.1",
        "port": gateway.port,
        "client_keys": [key],
        "known_hosts": None,
        "agent_path": None,
    }


printable = st.characters(codec="utf-8", exclude_characters="\0")
# asyncssh itself drops a connection whose pty request names a non-ASCII terminal type;
# what reaches the gateway's code is ASCII.
ascii_printable = st.characters(codec="ascii", exclude_characters="\0")


def _user_name(name: str) -> bool:
    """Whether SSH carries this user name (SASLprep, RFC 4252), as asyncssh checks on
    both ends before the gateway sees it."""
    try:
        saslprep(name)
    except SASLPrepError:
        return False
    return True


sizes = st.integers(min_value=0, max_value=2**32 - 1)


@fuzz_settings(30)
@given(
    target=st.text(printable, max_size=80).filter(_user_name)
    | st.sampled_from(["ses_", "agt_0", "ctr_x", "a b"]),
    command=st.none() | st.text(printable, max_size=300),
    env=st.dictionaries(
        st.sampled_from(["LANG", "LC_ALL", "TERM", "PATH"])
        | st.text(printable, min_size=1, max_size=10),
        st.text(printable, max_size=50),
        max_size=4,
    ),
    term=st.none() | st.text(ascii_printable, max_size=40),
    size=st.tuples(sizes, sizes),
)
async def test_ssh_gateway_inputs_give_a_clear_error_not_a_crash(
    ssh_client: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    target: str,
    command: str | None,
    env: dict[str, str],
    term: str | None,
    size: tuple[int, int],
) -> None:
    caplog.clear()
    options = {"term_type": term, "term_size": size} if term is not None else {}
    async with asyncssh.connect(username=target, **ssh_client) as conn:
        result = await conn.run(command, env=env, check=False, timeout=30, **options)
    # No target of that name: one `rexec:` line and a failure status, whatever came in.
    stderr = result.stderr if isinstance(result.stderr, str) else (result.stderr or b"").decode()
    stdout = result.stdout if isinstance(result.stdout, str) else (result.stdout or b"").decode()
    assert result.exit_status not in (None, 0), result
    assert "rexec: " in stderr + stdout, result
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
