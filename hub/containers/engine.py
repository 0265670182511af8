"""The one module that talks to the Docker Engine.

Control calls go through the `docker` SDK, which is synchronous, so each runs in a
small thread pool of its own and never on the event loop. Interactive streams (exec
with or without a TTY) do not use the SDK: we send the `exec/start` upgrade request
ourselves on an asyncio connection and keep the raw stream, so reads happen only
when the session has credit (backpressure down to the program) and nothing is lost
in a library's read-ahead buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import docker
import docker.errors
import psutil

from common.errors import ApiError, Conflict, Unavailable

T = TypeVar("T")
LABEL = "rexec.managed"
INSTANCE = "rexec.instance"
MUX_HEADER = struct.Struct(">BxxxI")  # stream (1 stdout, 2 stderr), size


class EngineError(ApiError):
    """The engine refused or failed an operation (as a 503 the client can act on)."""

    status = 503
    default_code = "docker_unavailable"


@dataclass
class ExecStream:
    """The raw byte stream of a started exec."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Engine:
    """Docker, behind asyncio-friendly methods."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="docker")
        self._client: docker.DockerClient | None = None

    # -- plumbing -------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as exc:
            raise EngineError(f"Docker refused: {exc.explanation or exc}") from None
        except docker.errors.DockerException as exc:
            raise EngineError(f"Docker is not reachable: {exc}") from None

    async def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = await self.call(docker.DockerClient, base_url=self.host, timeout=60)
        return self._client

    async def api(self) -> Any:
        return (await self.client()).api

    async def ping(self) -> None:
        api = await self.api()
        await self.call(api.ping)

    async def close(self) -> None:
        if self._client is not None:
            await self.call(self._client.close)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- images and networks --------------------------------------------------------

    async def has_image(self, ref: str) -> bool:
        api = await self.api()
        try:
            await self.call(api.inspect_image, ref)
            return True
        except docker.errors.NotFound:
            return False

    async def pull(self, ref: str, progress: Callable[[str], None] | None = None) -> None:
        api = await self.api()

        def pull() -> None:
            for event in api.pull(ref, stream=True, decode=True):
                if "error" in event:
                    raise EngineError(
                        f"cannot pull {ref}: {event['error']}", code="image_pull_failed"
                    )
                if progress is not None and event.get("status"):
                    progress(f"{ref}: {event['status']} {event.get('progress', '')}".strip())

        await self.call(pull)

    async def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        api = await self.api()

        def ensure() -> None:
            # `names` filters by substring: look for the exact name among what it finds.
            if any(n.get("Name") == name for n in api.networks(names=[name])):
                return
            try:
                api.create_network(name, driver="bridge", labels=labels, check_duplicate=True)
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # created meanwhile, by us or another hub
                    return
                # For example the engine's address pools are used up: say so, do not let
                # the container start fail later with a puzzling "network not found".
                raise EngineError(
                    f"Docker could not create the network {name}: {exc.explanation or exc}",
                    code="docker_network_failed",
                ) from None

        await self.call(ensure)

    # -- containers -----------------------------------------------------------

    async def run(self, spec: dict[str, Any]) -> str:
        """Create and start a container from a `create_container` spec; its id."""
        api = await self.api()

        def run() -> str:
            created = api.create_container(**spec)
            try:
                api.start(created["Id"])
            except Exception:
                with contextlib.suppress(Exception):
                    api.remove_container(created["Id"], force=True)
                raise
            return str(created["Id"])

        return await self.call(run)

    async def remove(self, docker_id: str) -> None:
        api = await self.api()
        with contextlib.suppress(docker.errors.NotFound):
            await self.call(api.remove_container, docker_id, force=True, v=True)

    async def inspect(self, docker_id: str) -> dict[str, Any] | None:
        api = await self.api()
        try:
            return dict(await self.call(api.inspect_container, docker_id))
        except docker.errors.NotFound:
            return None

    async def managed(self, instance: str) -> list[dict[str, Any]]:
        """Every container of this hub instance, running or not."""
        api = await self.api()
        found = await self.call(
            api.containers, all=True, filters={"label": [LABEL, f"{INSTANCE}={instance}"]}
        )
        return list(found)

    async def remove_network(self, name: str) -> None:
        api = await self.api()
        with contextlib.suppress(docker.errors.APIError):  # gone, or still in use
            await self.call(api.remove_network, name)

    async def update(self, docker_id: str, **limits: Any) -> None:
        api = await self.api()
        await self.call(api.update_container, docker_id, **limits)

    async def connect(self, docker_id: str, network: str, disconnect: str | None) -> None:
        api = await self.api()

        def move() -> None:
            api.connect_container_to_network(docker_id, network)
            if disconnect:
                api.disconnect_container_from_network(docker_id, disconnect, force=True)

        await self.call(move)

    # -- exec ---------------------------------------------------------------------

    async def exec_create(
        self,
        docker_id: str,
        cmd: list[str],
        *,
        tty: bool,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        user: str = "",
    ) -> str:
        api = await self.api()

        def create() -> dict[str, Any]:
            try:
                return api.exec_create(  # type: ignore[no-any-return]
                    docker_id,
                    cmd,
                    stdin=True,
                    stdout=True,
                    stderr=True,
                    tty=tty,
                    environment=env or None,
                    workdir=workdir,
                    user=user,
                )
            except docker.errors.APIError as exc:
                # Docker answers 409 when the container exists but is not running (it
                # was stopped, or its first process exited): a state the user can act on.
                if exc.status_code == 409:
                    raise Conflict(
                        "The container is stopped; delete it and create another.",
                        code="container_stopped",
                    ) from None
                raise

        created = await self.call(create)
        return str(created["Id"])

    async def exec_start(self, exec_id: str, *, tty: bool) -> ExecStream:
        """Start an exec and take over its connection (HTTP upgrade to a raw stream)."""
        api = await self.api()
        url = urlparse(self.host)
        if url.scheme == "unix":
            reader, writer = await asyncio.open_unix_connection(url.path, limit=1 << 16)
        elif url.scheme in ("tcp", "http"):
            reader, writer = await asyncio.open_connection(url.hostname, url.port, limit=1 << 16)
        else:
            raise EngineError(f"unsupported DOCKER_HOST {self.host}")
        body = json.dumps({"Detach": False, "Tty": tty}).encode()
        writer.write(
            (
                f"POST /v{api._version}/exec/{exec_id}/start HTTP/1.1\r\n"
                "Host: docker\r\nContent-Type: application/json\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            raise EngineError("Docker did not start the program.") from None
        status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
        if status not in (b"101", b"200"):
            writer.close()
            raise EngineError(f"Docker did not start the program ({head[:60]!r}).")
        return ExecStream(reader, writer)

    async def exec_resize(self, exec_id: str, cols: int, rows: int) -> None:
        """Best effort: a program that already ended cannot be resized, and need not be."""
        api = await self.api()
        with contextlib.suppress(EngineError, docker.errors.NotFound):
            await self.call(api.exec_resize, exec_id, height=rows, width=cols)

    async def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        api = await self.api()
        return dict(await self.call(api.exec_inspect, exec_id))

    async def exec_signal(self, exec_id: str, sig: signal.Signals) -> None:
        """Signal an exec's process and everything it started. The engine has no API
        for this, so the hub (on the engine's host) signals the host pids itself."""
        info = await self.exec_inspect(exec_id)
        pid = int(info.get("Pid") or 0)
        if pid <= 0 or not info.get("Running"):
            return

        def kill_tree() -> None:
            try:
                root = psutil.Process(pid)
                family = [*root.children(recursive=True), root]
            except psutil.Error:
                return
            for proc in family:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)

        await self.call(kill_tree)

    async def oom_kills(self, docker_id: str) -> int | None:
        """The container's OOM-kill count from its memory cgroup (v1 or v2), if visible."""

        def read() -> int | None:
            for path in (
                Path(f"/sys/fs/cgroup/memory/docker/{docker_id}/memory.oom_control"),
                Path(f"/sys/fs/cgroup/docker/{docker_id}/memory.events"),
                Path(f"/sys/fs/cgroup/system.slice/docker-{docker_id}.scope/memory.events"),
            ):
                with contextlib.suppress(OSError):
                    for line in path.read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
            return None

        return await self.call(read)


async def demux(reader: asyncio.StreamReader, size_limit: int) -> tuple[int, bytes] | None:
    """One frame of a non-TTY exec stream: (1 stdout | 2 stderr, bytes); None at the end."""
    try:
        header = await reader.readexactly(MUX_HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    stream, size = MUX_HEADER.unpack(header)
    if size > size_limit:
        raise Unavailable("Docker sent an oversized frame.")
    try:
        return stream, await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
