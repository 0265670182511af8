"""Helpers shared by the tests: real hub and agent processes on 127.0.0.1, and the
databases they use (SQLite, or a fresh PostgreSQL database per hub when
REXEC_TEST_DATABASE=postgres)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def database_backends() -> list[str]:
    """The backends this run covers: REXEC_TEST_DATABASE names one (scripts/test.sh
    runs the suite once per backend); unset, tests parametrised on the database take
    both and every other hub uses SQLite."""
    chosen = os.environ.get("REXEC_TEST_DATABASE", "").strip().lower()
    if chosen in ("", "both"):
        return ["sqlite", "postgres"]
    if chosen not in ("sqlite", "postgres"):
        raise ValueError(f"REXEC_TEST_DATABASE must be sqlite or postgres, not {chosen!r}")
    return [chosen]


def hubs_use_postgres() -> bool:
    """Whether every hub a test starts gets a PostgreSQL database of its own."""
    return database_backends() == ["postgres"]


_pg_base: str | None = None


def postgres_base() -> str:
    """URL of the test PostgreSQL server, started by scripts/services.sh if needed."""
    global _pg_base
    if _pg_base is None:
        _pg_base = service_url("postgres", "REXEC_TEST_POSTGRES_URL", "PostgreSQL")
    return _pg_base


def service_url(name: str, variable: str, what: str) -> str:
    """A test service's URL: from `variable` (scripts/test.sh sets it), else started by
    `scripts/services.sh NAME`. Where it cannot start, a developer's run skips; CI and
    the PostgreSQL pass fail."""
    url = os.environ.get(variable)
    if url:
        return url
    try:
        return subprocess.run(
            [str(ROOT / "scripts" / "services.sh"), name],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.strip()
    except (subprocess.CalledProcessError, OSError) as exc:
        if os.environ.get("CI") or hubs_use_postgres():
            raise
        pytest.skip(f"{what} is not available here: {exc}")


async def postgres_admin(sql: str) -> Any:
    """Run one statement on the server's maintenance database (CREATE/DROP DATABASE)."""
    import asyncpg

    conn = await asyncpg.connect(postgres_base().replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


# Databases this test process created and has not dropped yet (conftest drops them
# after each test).
CREATED_DATABASES: set[str] = set()
_RUN = f"{os.getpid():x}"


async def create_postgres_database(name: str) -> str:
    """A fresh database on the test server (kept if it exists); its URL."""
    rows = await postgres_admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if not rows:
        await postgres_admin(f'CREATE DATABASE "{name}"')
    CREATED_DATABASES.add(name)
    return postgres_base().rsplit("/", 1)[0] + "/" + name


async def drop_postgres_databases() -> None:
    while CREATED_DATABASES:
        name = CREATED_DATABASES.pop()
        await postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_coroutine_in_thread(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from sync code, whatever loop this thread has."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def hub_database_url(data_dir: Path) -> str:
    """The database a hub with this data directory uses in this run: SQLite in the
    directory, or (REXEC_TEST_DATABASE=postgres) a PostgreSQL database named after it,
    so a hub restarted on the same directory finds its data again."""
    if not hubs_use_postgres():
        return f"sqlite+aiosqlite:///{data_dir / 'rexec.db'}"
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return await create_postgres_database(f"rexec_t_{_RUN}_{digest}")


def redis_url() -> str:
    """The test Redis server."""
    return service_url("redis", "REXEC_TEST_REDIS_URL", "Redis")


def one_node_cluster(data_dir: Path) -> dict[str, str]:
    """In the PostgreSQL pass every hub also runs on Redis, as one node of a cluster:
    the same tests over both code paths (in-process and Redis). The secret and the key
    prefix follow the data directory, so a hub restarted on it is the same service."""
    digest = hashlib.sha256(f"{_RUN}:{data_dir.resolve()}".encode()).hexdigest()
    return {
        "REXEC_REDIS_URL": redis_url(),
        "REXEC_REDIS_PREFIX": f"t{digest[:16]}",
        "REXEC_JWT_SECRET": digest,
    }


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll a condition (sync or async) until it is truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


def rss_of(pid: int) -> int:
    """Resident memory of a process in bytes, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies, so a pytest killed
    from outside (a timeout, ^C) leaves no hub or agent running on the machine."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Proc:
    """A child process we started; ended by its own pid only."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        import threading

        self.argv = argv
        # The death signal follows the thread that started the child: only the main one
        # lives as long as the test process.
        main = threading.current_thread() is threading.main_thread()
        self.popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            text=True,
            preexec_fn=_die_with_parent if main else None,
        )
        self.lines: list[str] = []

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return "".join(self.lines)

    async def read_until(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        assert self.popen.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.argv[0]}: no {pattern!r} in:\n{self.output()}")
            line = await asyncio.wait_for(
                loop.run_in_executor(None, self.popen.stdout.readline), remaining
            )
            if not line:
                raise AssertionError(f"{self.argv[0]} exited:\n{self.output()}")
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def drain_in_background(self) -> None:
        """Keep reading output so the child never blocks on a full pipe."""
        import threading

        def pump() -> None:
            assert self.popen.stdout is not None
            with contextlib.suppress(ValueError, OSError):
                for line in self.popen.stdout:
                    self.lines.append(line)

        threading.Thread(target=pump, daemon=True).start()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        if self.popen.stdout is not None and self.popen.poll() is not None:
            with contextlib.suppress(OSError):
                self.popen.stdout.close()

    async def wait_exit(self, timeout: float = 15.0) -> int:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(None, self.popen.wait), timeout)


STARTED_HUB_DIRS: set[Path] = set()  # data directories of the hubs this run started


def hub_instances_running() -> set[str]:
    """Instance ids (their Docker label) of every `rexec-hub serve` running here."""
    found: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not any(a.endswith(b"rexec-hub") for a in argv[:2]) or b"serve" not in argv:
            continue
        if b"--data-dir" in argv and argv.index(b"--data-dir") + 1 < len(argv):
            path = Path(argv[argv.index(b"--data-dir") + 1].decode()) / "instance_id"
            with contextlib.suppress(OSError):
                found.add(path.read_text().strip())
    return found


def remove_hub_leftovers(engine: Any, data_dir: Path) -> None:
    """Remove the containers and networks one test hub left, by its instance label."""
    path = data_dir / "instance_id"
    if not path.exists():
        return
    label = f"rexec.instance={path.read_text().strip()}"
    for c in engine.containers.list(all=True, filters={"label": label}):
        with contextlib.suppress(Exception):
            c.remove(force=True)
    for n in engine.networks.list(filters={"label": label}):
        with contextlib.suppress(Exception):
            n.remove()


def remove_dead_pools(engine: Any) -> None:
    """Warm-pool containers (disposable by design) and empty managed networks of hubs
    that no longer run: a killed hub cannot remove them, and the engine has address pools
    for only a few dozen networks. User containers of a stopped hub are left alone."""
    live = hub_instances_running()
    for c in engine.containers.list(all=True, filters={"label": "rexec.pool=1"}):
        if c.labels.get("rexec.instance") not in live:
            with contextlib.suppress(Exception):
                c.remove(force=True)
    for n in engine.networks.list(filters={"label": "rexec.managed"}):
        if n.attrs.get("Labels", {}).get("rexec.instance") in live:
            continue
        with contextlib.suppress(Exception):
            n.reload()
            if not n.containers:
                n.remove()


class Hub:
    """`rexec-hub serve` as a real subprocess."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, port: int = 0) -> None:
        self.data_dir = data_dir
        # Test hubs never take the default SSH port, and keep no warm pool (each is two
        # containers and a network on the shared engine): tests that want them ask.
        self.env = {"REXEC_SSH_PORT": "0", "REXEC_WARM_POOL_SIZE": "0", **(env or {})}
        self.port = port
        self.proc: Proc | None = None
        self.url = ""

    @property
    def database_url(self) -> str:
        return (
            self.env.get("REXEC_DATABASE_URL")
            or f"sqlite+aiosqlite:///{self.data_dir / 'rexec.db'}"
        )

    async def start(self) -> Hub:
        if "REXEC_DATABASE_URL" not in self.env and hubs_use_postgres():
            self.env["REXEC_DATABASE_URL"] = await hub_database_url(self.data_dir)
            for key, value in one_node_cluster(self.data_dir).items():
                self.env.setdefault(key, value)
        STARTED_HUB_DIRS.add(self.data_dir)
        self.proc = Proc(
            [
                str(BIN / "rexec-hub"),
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=self.env,
        )
        try:
            m = await self.proc.read_until(r"listening on (http://\S+)")
        except BaseException:  # not up in time: it must not outlive the test
            self.proc.kill()
            raise
        self.url = m.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        await self.started()
        self.proc.drain_in_background()
        return self

    async def started(self) -> None:
        """Read what else the hub prints once it listens (subclasses)."""

    async def execute(self, statement: Any) -> None:
        """Run one SQLAlchemy statement on the hub's database (SQLite or PostgreSQL),
        for a test that must age a row the API cannot."""
        from hub.db.engine import Database

        db = Database(self.database_url)
        try:
            async with db.session() as s:
                await s.execute(statement)
                await s.commit()
        finally:
            await db.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc:
            self.proc.kill(sig)


class Api:
    """A small JSON client for the hub's API."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str | None = None) -> None:
        self.http = http
        self.base = base
        self.token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data: Any = io.BytesIO(raw) if raw is not None else None
        if raw is None and body is not None:
            data = json.dumps(body)
        async with self.http.request(
            method, self.base + path, data=data, headers=self.headers()
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        code, answer = await self.call(method, path, body)
        assert code == status, (method, path, code, answer)
        return answer

    async def sign_up(self, email: str, password: str = "correct horse 1") -> Api:
        await self.ok("POST", "/api/register", {"email": email, "password": password}, 201)
        tokens = await self.ok("POST", "/api/login", {"email": email, "password": password})
        return Api(self.http, self.base, tokens["access_token"])


def assert_error(status: int, body: Any, expected_status: int, code: str | None = None) -> None:
    """The API.md error shape, with the right status (and code when given)."""
    assert status == expected_status, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["code"], str) and err["code"], body
    assert isinstance(err["message"], str) and err["message"], body
    if code is not None:
        assert err["code"] == code, body


class TcpProxy:
    """A loopback TCP proxy that a test can cut, to drop a link without killing either
    end (both sides see the connection die; new connections are refused meanwhile)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.heard = bytearray()  # the first 64 KiB clients sent, to check what went out

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if src is reader and len(self.heard) < 65536:
                        self.heard += data[: 65536 - len(self.heard)]
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (
            asyncio.ensure_future(pipe(reader, up_writer)),
            asyncio.ensure_future(pipe(up_reader, writer)),
        ):
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def cut(self) -> None:
        """Drop every connection and stop accepting until `restore`."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()
