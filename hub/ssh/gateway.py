"""The SSH gateway: `ssh -p 2222 TARGET@HUB [-- CMD]` reaches a container or agent.

It only adapts, like the terminal WebSocket handler: public-key authentication against
the users' registered keys (failures counted by the abuse guard); an interactive
channel (with a pty) becomes a broker session with this channel attached as a client,
so it is listed, recorded and joinable like a browser's; a command without a pty runs
through the target's exec path with stdout and stderr streamed apart and its exit
status returned. `ses_...` as the user name joins one of the user's live sessions.

A connection carries tags like a terminal socket (hub/commands.py): the key that let it
in and the target it reached, so removing the key, signing out everywhere or deleting
the target ends it with one line on the client's stderr.

A key is a person's or an agent's (its `kind`). An agent's key goes through the
supervision check (hub/approvals/guard.py) on every channel: a command runs only if the
target's policy runs it at once (one the policy would hold is refused with a line
saying so: an SSH client cannot wait for a person, exec and MCP run_command can), a
shell or `ses_...` join is read-only unless the policy lets agents type, and pausing the
target ends the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh
from aiohttp import web
from asyncssh.kex import get_kex_algs

from common.errors import ApiError, Forbidden, NotFound, RateLimited, RexecError
from common.ids import has_prefix
from hub.approvals.guard import Action
from hub.commands import Holder
from hub.db.models import SshKey
from hub.execution import ExecChannel, ExecCollector
from hub.sessions.broker import Client, Role, Session
from hub.sessions.source import Source
from hub.ssh.keys import SshKeys
from hub.ssh.throttle import SourceThrottle
from hub.state import AGENTS, BROKER, CONTAINERS, DB, GUARD, SETTINGS, SSH, SUPERVISOR
from hub.targets import resolve_target

log = logging.getLogger("rexec.hub.ssh")
HOST_KEY_FILE = "ssh_host_ed25519_key"
INPUT_HIGH = 256 << 10  # keystroke bytes queued towards a target before reading pauses
ENDED_EXIT = 255  # the exit status when access ends under a running program
CLOSE_AFTER = 2.0  # seconds a client has to close an ended connection itself
# The `sftp` subsystem (sftp, and scp, which speaks SFTP in current OpenSSH) is served by
# the target's own OpenSSH sftp-server, run like an exec as sshd runs it: its file
# operations happen in the target, as the target's user, with nothing new in the hub.
SFTP_SERVERS = (
    "/usr/lib/openssh/sftp-server",  # Debian, Ubuntu
    "/usr/libexec/openssh/sftp-server",  # Fedora, RHEL
    "/usr/lib/ssh/sftp-server",  # Arch, Alpine
    "/usr/libexec/sftp-server",
)
SFTP_COMMAND = (
    'cd "$HOME" 2>/dev/null; for p in '
    + " ".join(SFTP_SERVERS)
    + '; do [ -x "$p" ] && exec "$p"; done; '
    "echo 'rexec: This target has no sftp-server for sftp and scp: install OpenSSH"
    " sftp-server there (Debian: openssh-sftp-server).' >&2; exit 127"
)
DEFAULT_TERM = "xterm-256color"
# Only the modern algorithms (docs/security.md; ssh-audit reports no failure): hybrid
# post-quantum and curve25519 key exchange (no finite-field DH, so no DHEat amplification
# and no SHA-1 or small group), AEAD ciphers only, encrypt-then-MAC SHA-2 MACs, and the
# ed25519 host key (load_host_key). What asyncssh does not offer is left out.
KEX_ALGS = (
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
)
ENCRYPTION_ALGS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
)
MAC_ALGS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")


def _offered(wanted: tuple[str, ...], available: list[bytes]) -> list[str]:
    return [alg for alg in wanted if alg.encode() in available]


def load_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The gateway's host key: generated on first use into data_dir (mode 0600), then kept."""
    path = data_dir / HOST_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return asyncssh.read_private_key(path)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key())
        return key
    return asyncssh.read_private_key(path)


def host_key_fingerprint(data_dir: Path) -> str:
    return load_host_key(data_dir).get_fingerprint("sha256")


def _exit_status(code: int) -> int:
    return code if 0 <= code <= 255 else 255


def _dimension(value: int, default: int) -> int:
    return min(value, 1000) if value > 0 else default


class Gateway:
    """The listening SSH server and what its sessions need from the hub."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.keys = SshKeys(app[DB])
        self.acceptor: asyncssh.SSHAcceptor | None = None
        self.host = app[SETTINGS].ssh_host
        self.port = 0
        self.fingerprint = ""
        self.connections: set[_Server] = set()
        self.throttle = SourceThrottle()  # unauthenticated connections per address

    async def start(self) -> None:
        settings = self.app[SETTINGS]
        key = load_host_key(settings.data_dir)
        self.fingerprint = key.get_fingerprint("sha256")
        self.acceptor = await asyncssh.create_server(
            lambda: _Server(self),
            settings.ssh_host,
            settings.ssh_port,
            server_host_keys=[key],
            encoding=None,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            server_version="Rexec",
            login_timeout=60,
            kex_algs=_offered(KEX_ALGS, get_kex_algs()),
            encryption_algs=list(ENCRYPTION_ALGS),
            mac_algs=list(MAC_ALGS),
            compression_algs=["none"],
        )
        self.port = self.acceptor.get_port()
        log.info(
            "ssh gateway on %s:%d, host key %s", settings.ssh_host, self.port, self.fingerprint
        )

    async def stop(self) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
        for server in list(self.connections):
            if server.conn is not None:
                server.conn.close()

    def kick(self, predicate: Callable[[Holder], bool], reason: str) -> None:
        """End the connections whose access ended (see hub/commands.py)."""
        for server in list(self.connections):
            if server.user_id is not None and predicate(server):
                server.end(reason)

    async def _has_target(self, user_id: str, target: str) -> bool:
        session = self.app[BROKER].get(target)
        if session is not None:  # `ssh ses_...@hub` joins a live session
            return session.user_id == user_id
        try:
            await resolve_target(self.app, user_id, target)
        except ApiError:
            return False
        return True

    async def key_for(self, key: asyncssh.SSHKey, target: str) -> SshKey | None:
        """The registered key a client authenticates with. Keys are unique per account,
        so several accounts may hold one key: the one whose account has `target` wins
        (asyncssh then checks the client's signature: only the key's holder passes)."""
        rows = await self.keys.owners_of(key)
        if len(rows) > 1:
            rows = [row for row in rows if await self._has_target(row.user_id, target)]
        if len(rows) != 1:
            return None
        await self.keys.used(rows[0].id)
        return rows[0]


class _Server(asyncssh.SSHServer):
    """One SSH connection: authentication, then its session channels."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.conn: asyncssh.SSHServerConnection | None = None
        self.address = "unknown"
        self.user_id: str | None = None
        self.kind = "agent"  # the key's: a person's or an agent's (hub/approvals/guard.py)
        self.tags: dict[str, str] = {}  # ssh_key, then target (hub/commands.py)
        self.channels: set[GatewaySession] = set()
        self.ended: str | None = None
        self.pending = False  # counted by the gateway's throttle until authenticated

    def end(self, reason: str) -> None:
        """Access ended: every channel says why and exits; the client then closes the
        connection, or it is closed for it after CLOSE_AFTER seconds."""
        if self.ended is not None or self.conn is None:
            return
        self.ended = reason
        log.info("ssh: connection of %s ended: %s", self.user_id, reason)
        for channel in list(self.channels):
            channel.end(reason)
        asyncio.get_running_loop().call_later(CLOSE_AFTER, self.conn.close)

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "unknown"
        if not self.gateway.throttle.admit(self.address):
            log.info("ssh: too many new connections from %s: dropped", self.address)
            conn.abort()  # before the version line: no key exchange is spent on it
            return
        self.pending = True
        self.gateway.connections.add(self)

    def _settle(self) -> None:
        if self.pending:
            self.pending = False
            self.gateway.throttle.settled(self.address)

    def auth_completed(self) -> None:
        self._settle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle()
        self.gateway.connections.discard(self)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Counted as a failure before it is checked, given back when it succeeds."""
        guard = self.gateway.app[GUARD]
        try:
            await guard.before_ssh_auth(self.address, username)
        except RateLimited:
            log.info("ssh: too many failed authentications from %s", self.address)
            return False
        try:
            row = await self.gateway.key_for(key, username)
        except Exception:
            log.exception("ssh: key lookup failed")
            return False
        if row is None:
            return False
        await guard.ssh_auth_succeeded(self.address, username)
        self.user_id = row.user_id
        self.kind = row.kind
        self.tags["ssh_key"] = row.id
        return True

    def session_requested(self) -> GatewaySession | bool:
        if self.ended is not None:
            return False
        assert self.conn is not None and self.user_id is not None
        target = str(self.conn.get_extra_info("username") or "")
        channel = GatewaySession(self, target)
        self.channels.add(channel)
        return channel

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return False  # port forwarding is refused

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False


class _Streamer(ExecCollector):
    """An exec's output straight to the SSH channel (stdout and stderr apart); credit
    goes back to the program only while the channel is not paused."""

    def __init__(self, owner: GatewaySession) -> None:
        super().__init__(0)
        self.owner = owner
        self.owed = 0

    def on_output(self, data: bytes) -> None:
        self.owner.write(data)
        self._credit(len(data))

    def on_stderr(self, data: bytes) -> None:
        self.owner.write(data, stderr=True)
        self._credit(len(data))

    def _credit(self, size: int) -> None:
        if self.owner.writable.is_set() and self.channel is not None:
            self.channel.credit(size)
        else:
            self.owed += size

    def release(self) -> None:
        if self.owed and self.channel is not None:
            owed, self.owed = self.owed, 0
            self.channel.credit(owed)


class SshSink:
    """The broker's view of an SSH channel."""

    def __init__(self, owner: GatewaySession) -> None:
        self.owner = owner

    async def send_bytes(self, data: bytes) -> None:
        if self.owner.closed:
            raise ConnectionError("ssh channel closed")
        self.owner.write(data)
        await self.owner.writable.wait()

    async def send_text(self, text: str) -> None:
        msg = json.loads(text)
        if msg.get("type") == "exit":
            self.owner.exit_code = int(msg.get("code", 0))
        elif msg.get("type") == "error":
            self.owner.error(str(msg.get("message", "error")))

    async def close(self, code: int, reason: str) -> None:
        if self.owner.exit_code is not None:
            self.owner.finish(self.owner.exit_code)
            return
        if not self.owner.told:
            self.owner.error(reason)
        self.owner.finish(ENDED_EXIT)


class GatewaySession(asyncssh.SSHServerSession[bytes]):
    """One session channel: an interactive broker session, a join, or one command."""

    def __init__(self, server: _Server, target: str) -> None:
        assert server.user_id is not None
        self.server = server
        self.gateway = server.gateway
        self.user_id = server.user_id
        self.target = target
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.pty = False
        self.term = DEFAULT_TERM
        self.cols, self.rows = 80, 24
        self.command: str | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.inbox_bytes = 0
        self.reading_paused = False
        self.session: Session | None = None
        self.client: Client | None = None
        self.streamer: _Streamer | None = None
        self.exec_channel: ExecChannel | None = None
        self.exit_code: int | None = None
        self.told = False  # an error line was written: the client knows why it ends
        self.read_only: str | None = None  # why this agent's keystrokes are dropped
        self.closed = False
        self.finished = False
        self.task: asyncio.Task[None] | None = None

    # -- asyncssh callbacks -------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: object
    ) -> bool:
        self.pty = True
        self.term = term_type or DEFAULT_TERM
        self.cols = _dimension(term_size[0], 80)
        self.rows = _dimension(term_size[1], 24)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != "sftp" or self.pty or has_prefix(self.target, "ses"):
            return False
        self.command = SFTP_COMMAND
        return True

    def session_started(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.inbox.put_nowait(data)
        self.inbox_bytes += len(data)
        if self.inbox_bytes > INPUT_HIGH and not self.reading_paused and self.chan is not None:
            self.reading_paused = True
            self.chan.pause_reading()

    def eof_received(self) -> bool:
        self.inbox.put_nowait(None)
        return True  # stay half open until the program exits

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.cols, self.rows = _dimension(width, self.cols), _dimension(height, self.rows)
        if self.session is not None and self.client is not None:
            self.session.resize(self.client, self.cols, self.rows)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()
        if self.streamer is not None:
            self.streamer.release()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.channels.discard(self)
        self.closed = True
        self.writable.set()
        self.inbox.put_nowait(None)
        if self.session is not None and self.client is not None:
            self.session.detach(self.client)  # the session lives on for the grace period
        if self.exec_channel is not None and not self.finished:
            self.exec_channel.close(0.0)
        if self.task is not None and not self.task.done() and self.session is None:
            self.task.cancel()

    # -- output -------------------------------------------------------------------

    def write(self, data: bytes, *, stderr: bool = False) -> None:
        if self.closed or self.finished or self.chan is None:
            return
        if stderr:
            self.chan.write_stderr(data)
        else:
            self.chan.write(data)

    def error(self, message: str) -> None:
        end = "\r\n" if self.pty else "\n"
        self.write(f"rexec: {message}{end}".encode(), stderr=True)
        self.told = True

    def end(self, reason: str) -> None:
        """Access ended: say why (once), leave the session (it lives on for its grace
        period, as after a dropped browser), stop a command, exit."""
        if self.finished or self.closed:
            return
        if not self.told:
            self.error(reason)
        if self.session is not None and self.client is not None:
            self.session.detach(self.client)
        if self.exec_channel is not None:
            self.exec_channel.close(0.0)
        self.finish(ENDED_EXIT)

    def finish(self, code: int) -> None:
        if self.finished or self.closed or self.chan is None:
            return
        self.finished = True
        self.chan.exit(_exit_status(code))

    # -- the work -----------------------------------------------------------------

    async def _next_input(self) -> bytes | None:
        data = await self.inbox.get()
        if data is not None:
            self.inbox_bytes -= len(data)
            if self.reading_paused and self.inbox_bytes < INPUT_HIGH // 2 and self.chan:
                self.reading_paused = False
                self.chan.resume_reading()
        return data

    async def _run(self) -> None:
        try:
            if has_prefix(self.target, "ses"):
                await self._join()
            elif self.pty:
                await self._interactive()
            else:
                await self._exec()
        except asyncio.CancelledError:
            raise
        except RexecError as exc:
            self.error(exc.message)
            self.finish(1)
        except Exception:
            log.exception("ssh session for %s failed", self.target)
            self.error("The hub could not run this session.")
            self.finish(1)

    def _env(self) -> dict[str, str]:
        env = {"TERM": self.term} if self.pty else {}
        if self.chan is not None:
            for name, value in self.chan.get_environment().items():
                if name == "LANG" or name.startswith("LC_"):
                    env[name] = value
        return env

    async def _resolve(self) -> str:
        try:
            target = await resolve_target(self.gateway.app, self.user_id, self.target)
        except NotFound:  # one message for whatever the SSH user named
            raise NotFound(
                f"No such target {self.target!r}: not a container, agent or live session of yours.",
                code="target_not_found",
            ) from None
        self.server.tags["target"] = target
        return target

    async def _supervise(self, target: str, action: Action, cmd: str | None = None) -> Role:
        """The supervision check for this channel: raises on a refusal; answers the role
        (a viewer when an agent's key may watch but not type)."""
        verdict = await self.gateway.app[SUPERVISOR].check(self.server.kind, target, action, cmd)
        if verdict.action == "hold":  # an SSH client cannot wait for a person
            raise Forbidden(
                f"This command needs a person's approval ({verdict.reason}); run it with "
                "`rexec exec` or MCP run_command, which wait for the decision.",
                code="approval_required",
            )
        if verdict.action == "refuse":
            raise Forbidden(verdict.reason, code=verdict.code)
        if self.server.kind != "person":
            self.server.tags["ai_target"] = target
            if verdict.action == "run":
                self.server.tags["ai_keys"] = target
        if verdict.action == "watch":
            self.read_only = verdict.reason
            return "viewer"
        return "owner"

    async def _interactive(self) -> None:
        target = await self._resolve()
        role = await self._supervise(target, "open", self.command)
        app = self.gateway.app
        argv = ["/bin/sh", "-c", self.command] if self.command else None
        source: Source
        if has_prefix(target, "agt"):
            conn = app[AGENTS].connection(target)
            source = await conn.open_channel(
                "pty", argv, env=self._env(), cols=self.cols, rows=self.rows
            )
        else:
            _, source = await app[CONTAINERS].open_pty(
                self.user_id, target, argv, self.cols, self.rows, self._env()
            )
        if self.closed or self.finished:  # the client left (or was ended) meanwhile
            source.close(0.0)
            return
        session = await app[BROKER].start(
            user_id=self.user_id, target=target, source=source, size=(self.cols, self.rows)
        )
        log.info("ssh: %s opened session %s on %s", self.user_id, session.id, target)
        await self._attach(session, role)

    async def _join(self) -> None:
        session = self.gateway.app[BROKER].get(self.target)
        if session is None or session.user_id != self.user_id:
            raise NotFound(f"No live session {self.target!r} of yours.", code="session_not_found")
        self.server.tags["target"] = session.target
        role = await self._supervise(session.target, "attach")
        await self._attach(session, role, resize=self.pty)

    async def _attach(self, session: Session, role: Role, *, resize: bool = False) -> None:
        if self.closed or self.finished:
            return
        self.session = session
        self.client = session.attach(self.user_id, role, SshSink(self))
        if resize:
            session.resize(self.client, self.cols, self.rows)
        while (data := await self._next_input()) is not None and not self.finished:
            if self.read_only is not None:  # said once, at the first keystroke dropped
                self.error(f"read-only: {self.read_only}")
                self.read_only = None
            await session.input(self.client, data)

    async def _exec(self) -> None:
        target = await self._resolve()
        if self.command is None or self.command == SFTP_COMMAND:
            await self._supervise(target, "type")  # a shell's stdin, SFTP: nothing to judge
        else:
            await self._supervise(target, "run", self.command)
        app = self.gateway.app
        argv = ["/bin/sh", "-c", self.command] if self.command is not None else ["/bin/sh"]
        streamer = _Streamer(self)
        channel: ExecChannel
        if has_prefix(target, "agt"):
            conn = app[AGENTS].connection(target)
            agent_channel = await conn.open_channel("exec", argv, env=self._env())
            agent_channel.on_stderr = streamer.on_stderr
            streamer.channel = channel = agent_channel
            agent_channel.events = streamer  # replays output that came early
        else:
            container_exec = await app[CONTAINERS].open_exec(
                self.user_id, target, argv, self._env()
            )
            streamer.channel = channel = container_exec
            container_exec.listen(streamer)
        self.streamer, self.exec_channel = streamer, channel
        if self.closed or self.finished:
            channel.close(0.0)
            return
        feeder = asyncio.get_running_loop().create_task(self._feed(channel))
        try:
            code = await streamer.done
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        self.finish(code)

    async def _feed(self, channel: ExecChannel) -> None:
        while (data := await self._next_input()) is not None:
            await channel.write(data)
        channel.eof()


async def ssh_context(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: the gateway runs while the hub does (unless `ssh_enabled` is off)."""
    if not app[SETTINGS].ssh_enabled:
        yield
        return
    gateway = Gateway(app)
    try:
        await gateway.start()
    except OSError as exc:
        # A hub that was asked for SSH and silently runs without it is worse than one
        # that does not start: `rexec-hub serve` exits with this line.
        settings = app[SETTINGS]
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RexecError(
            f"cannot listen for SSH on {settings.ssh_host}:{settings.ssh_port} "
            f"({why}): free the port, set REXEC_SSH_PORT to another one, "
            "or REXEC_SSH_ENABLED=false to run without the SSH gateway.",
            code="ssh_port_unavailable",
        ) from None
    app[SSH] = gateway
    yield
    await gateway.stop()
