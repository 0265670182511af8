"""Supervision belongs to the credential: docs/security.md's table, walked cell by cell.

The table is read from the page itself, so the documentation and the hub cannot drift
apart. Every cell is driven through the real path: REST exec, the MCP server (the
official `mcp` client), OpenSSH's `ssh` (with and without a pty), and the terminal
WebSocket, against a real hub and a real agent process. Whether keystrokes arrived is
seen on the agent's machine (this one): a `touch` of a fresh file either happens or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pexpect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.approvals.test_mcp import connect as mcp_connect
from tests.security.conftest import Credentials, RunningAgent
from tests.ssh.conftest import Key, SshHub, run_ssh, spawn
from tests.support import Api, wait_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
SAFE = "echo ran-$((40+2))"
DENIED_WORD = "rexec-forbidden"
RISKY = "rm -rf /tmp/rexec-sup-nothing-here"
# How an SSH refusal line says which refusal it is (the gateway prints the message).
SSH_CODES = {
    "paused by its owner": "ai_paused",
    "deny pattern": "command_denied",
    "needs a person's approval": "approval_required",
}


@dataclass(frozen=True)
class Column:
    policy: dict[str, Any]
    paused: bool
    cmd: str
    person: bool = False


COLUMNS = {
    "person": Column({"mode": "approve_all", "deny": [DENIED_WORD]}, True, SAFE, person=True),
    "agent, `auto`": Column({"mode": "auto"}, False, SAFE),
    "agent, `auto` + deny": Column(
        {"mode": "auto", "deny": [DENIED_WORD]}, False, f"echo {DENIED_WORD}"
    ),
    "agent, `approve_risky`": Column({"mode": "approve_risky"}, False, RISKY),
    "agent, `approve_all`": Column({"mode": "approve_all"}, False, SAFE),
    "agent, paused": Column({"mode": "auto"}, True, SAFE),
}


def read_table() -> dict[str, dict[str, str]]:
    """docs/security.md's supervision table: {path: {column: outcome}}."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| path |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return rows


@dataclass
class Walk:
    hub: SshHub
    owner: Api
    creds: Credentials
    agent: str
    column: Column
    refusals: list[str] = field(default_factory=list)

    def token(self) -> Api:
        return self.creds.person_token if self.column.person else self.creds.agent_token

    def ws_token(self) -> str:
        """A terminal socket's credential: the sign-in for a person, else the AI's token."""
        token = self.owner.token if self.column.person else self.creds.agent_token.token
        assert token is not None
        return token

    def key(self) -> Key:
        return self.creds.person_key if self.column.person else self.creds.agent_key

    def ws_url(self, token: str, **query: str) -> str:
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"ws://127.0.0.1:{self.hub.port}/ws/terminal/{self.agent}?token={token}{extra}"


def marker() -> Path:
    return Path(f"/tmp/rexec-sup-{secrets.token_hex(6)}")


async def ran(cmd: str, stdout: str) -> None:
    if cmd == SAFE:
        assert stdout.strip() == "ran-42", stdout


# -- commands ---------------------------------------------------------------------------


async def rest_exec(w: Walk) -> str:
    who = w.owner if w.column.person else w.creds.agent_token
    code, body = await who.call("POST", f"/api/agents/{w.agent}/exec", {"cmd": w.column.cmd})
    if code == 200:
        assert body["exit_code"] == 0, body
        await ran(w.column.cmd, body["stdout"])
        return "runs"
    if code == 202:
        await w.owner.ok("POST", f"/api/approvals/{body['approval']['id']}/reject", {})
        return "held"
    assert code == 403, (code, body)
    return f"refused `{body['error']['code']}`"


def tool_error_code(result: Any) -> str:
    text = result.content[0].text
    found = re.search(r"\(([a-z_]+)\)$", text)
    assert found, text
    return found.group(1)


async def mcp_run(w: Walk) -> str:
    assert w.token().token
    async with mcp_connect(w.hub, w.token().token) as session:
        result = await session.call_tool(
            "run_command", {"target": w.agent, "command": w.column.cmd, "wait_seconds": 0}
        )
    if result.is_error:
        return f"refused `{tool_error_code(result)}`"
    answer = dict(result.structured_content or json.loads(result.content[0].text))
    if answer["status"] == "pending":
        await w.owner.ok("POST", f"/api/approvals/{answer['approval']}/reject", {})
        return "held"
    assert answer["status"] == "completed" and answer["exit_code"] == 0, answer
    await ran(w.column.cmd, answer["stdout"])
    return "runs"


def ssh_refusal(stderr: str) -> str:
    line = stderr.strip()
    assert line.startswith("rexec: ") and "\n" not in line, stderr
    codes = [code for text, code in SSH_CODES.items() if text in line]
    assert len(codes) == 1, line
    return f"refused `{codes[0]}`"


async def ssh_exec(w: Walk) -> str:
    done = await run_ssh(w.hub, w.key(), w.agent, w.column.cmd)
    if done.code == 0:
        await ran(w.column.cmd, done.stdout)
        return "runs"
    assert done.code == 1, done
    return ssh_refusal(done.stderr)


# -- keystrokes -------------------------------------------------------------------------


async def prompt(ws: ClientConnection, seen: bytearray) -> None:
    async with asyncio.timeout(20):
        while not seen.rstrip().endswith((b"$", b"#")):
            msg = await ws.recv()
            if isinstance(msg, bytes):
                seen += msg


async def typing_over(ws: ClientConnection, role: str) -> str:
    """Type a `touch` into an attached socket: "types" if it happened, "read-only" if the
    hub said it dropped it (and it did not happen)."""
    seen = bytearray()
    await prompt(ws, seen)  # output reaches a viewer too
    path = marker()
    await ws.send(f"touch {path}\n".encode())
    if role == "owner":
        await wait_for(path.exists, 15, what=f"{path} made by typed keys")
        return "types"
    assert role == "viewer"
    async with asyncio.timeout(15):
        while True:
            msg = await ws.recv()
            if isinstance(msg, str) and json.loads(msg).get("type") == "error":
                told = json.loads(msg)
                break
    assert told["code"] in ("ai_read_only", "ai_paused"), told
    assert not path.exists()  # told before the keystrokes were dropped, never typed
    return "read-only"


async def ws_refusal(url: str) -> str:
    """A socket refused before the upgrade: the error shape, in the HTTP answer."""
    try:
        async with connect(url, compression=None):
            raise AssertionError("the socket was accepted")
    except InvalidStatus as exc:
        assert exc.response.status_code == 403, exc.response
        return f"refused `{json.loads(exc.response.body or b'{}')['error']['code']}`"


async def ws_new(w: Walk) -> str:
    url = w.ws_url(w.ws_token())
    try:
        ws_cm = connect(url, compression=None)
        ws = await ws_cm
    except InvalidStatus:
        return await ws_refusal(url)
    try:
        first = json.loads(await ws.recv())
        assert first["type"] == "session", first
        return await typing_over(ws, first["role"])
    finally:
        await ws.close()


@contextlib.asynccontextmanager
async def persons_session(w: Walk) -> AsyncIterator[str]:
    """A live session the owner opened from her browser (a sign-in)."""
    assert w.owner.token
    async with connect(w.ws_url(w.owner.token), compression=None) as ws:
        first = json.loads(await ws.recv())
        await prompt(ws, bytearray())
        yield str(first["id"])


async def ws_join(w: Walk) -> str:
    async with (
        persons_session(w) as session_id,
        connect(w.ws_url(w.ws_token(), session=session_id), compression=None) as ws,
    ):
        first = json.loads(await ws.recv())
        assert first["type"] == "session" and first["id"] == session_id, first
        return await typing_over(ws, first["role"])


async def ssh_shell_at(w: Walk, target: str) -> str:
    """`ssh -t TARGET` under a real pty: refused (one line, exit 1), or a `touch` typed
    that either happens ("types") or is dropped with one `rexec: read-only` line."""
    child = spawn(w.hub, w.key(), target)
    try:
        if child.expect([r"rexec: [^\r\n]+", r"[$#] $"], timeout=20) == 0:
            after = child.after
            line = after.decode() if isinstance(after, bytes) else str(after)
            child.expect(pexpect.EOF, timeout=10)
            child.close()
            assert child.exitstatus == 1, child.exitstatus
            return ssh_refusal(line)
        path = marker()
        child.sendline(f"touch {path}")
        if child.expect(["rexec: read-only", str(path)], timeout=15) == 0:
            assert not path.exists()
            return "read-only"
        await wait_for(path.exists, 15, what=f"{path} made by keys typed over SSH")
        return "types"
    finally:
        child.close(force=True)


async def ssh_shell(w: Walk) -> str:
    return await ssh_shell_at(w, w.agent)


async def ssh_join(w: Walk) -> str:
    async with persons_session(w) as session_id:
        return await ssh_shell_at(w, session_id)


async def mcp_keys(w: Walk) -> str:
    assert w.token().token
    path = marker()
    async with mcp_connect(w.hub, w.token().token) as session:
        result = await session.call_tool(
            "send_keys", {"target": w.agent, "keys": f"touch {path}\n"}
        )
    if result.is_error:
        assert not path.exists()
        return f"refused `{tool_error_code(result)}`"
    await wait_for(path.exists, 20, what=f"{path} made by send_keys")
    return "types"


PATHS: dict[str, Callable[[Walk], Awaitable[str]]] = {
    "REST exec": rest_exec,
    "MCP `run_command`": mcp_run,
    "SSH `-- CMD`": ssh_exec,
    "terminal WebSocket, new": ws_new,
    "terminal WebSocket, `?session=`": ws_join,
    "SSH shell": ssh_shell,
    "SSH `ses_...` join": ssh_join,
    "MCP `send_keys`": mcp_keys,
}


async def set_column(owner: Api, agent_id: str, column: Column) -> None:
    await owner.ok("POST", f"/api/agents/{agent_id}/policy/resume")
    await owner.ok("PUT", f"/api/agents/{agent_id}/policy", column.policy)
    if column.paused:
        await owner.ok("POST", f"/api/agents/{agent_id}/policy/pause")


async def test_the_documented_table_is_what_every_path_does(
    hub: SshHub, owner: Api, creds: Credentials, agent: RunningAgent
) -> None:
    table = read_table()
    assert set(table) == set(PATHS), "every path of the table has a walker, and back"
    assert all(set(row) == set(COLUMNS) for row in table.values()), table
    got: dict[tuple[str, str], str] = {}
    wanted: dict[tuple[str, str], str] = {}
    for name, column in COLUMNS.items():
        await set_column(owner, agent.id, column)
        for path, walk in PATHS.items():
            expected = table[path][name]
            if expected == "as the policy says":  # asks for supervision: the policy applies
                expected = table[path]["agent, paused"]
            wanted[path, name] = expected
            got[path, name] = await walk(Walk(hub, owner, creds, agent.id, column))
    assert got == wanted
