"""Containers: the rules (catalog, limits, caps, lifetimes) over the engine adapter.

A container is a sandbox: every capability dropped (a root user keeps the few a usable
shell needs), no new privileges, pid, memory and CPU limits, a network per user (or
none), an init process, optional read-only root. The hub's database is the record;
at start the hub reconciles the engine with it, and a reaper ends containers that
are idle or past their lifetime. A warm pool of started containers per catalog image
makes creation fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import defaultdict
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import select, update

from common.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from common.ids import new_id
from hub import lifecycle
from hub.api.http import Body, iso
from hub.billing import plans
from hub.containers.engine import INSTANCE, LABEL, Engine, EngineError
from hub.containers.source import ContainerExec, ContainerPty
from hub.db.engine import Database
from hub.db.models import Container, utcnow
from hub.execution import ExecCollector, ExecRequest, collect
from hub.sessions.broker import Broker
from hub.settings import HubSettings

log = logging.getLogger("rexec.hub.containers")
# Kept only when the container's user is root: enough for package managers, chown,
# su and kill inside the sandbox, nothing that reaches the host (no SYS_ADMIN,
# NET_ADMIN, NET_RAW, MKNOD, SYS_PTRACE, ...).
ROOT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
POOL_NETWORK = "rexec-pool"
CPU_PERIOD = 100_000
KEEPALIVE = ["sleep", "2147483647"]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CreateContainer(Body):
    image: str | None = Field(None, min_length=1, max_length=255)
    name: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    cpus: float | None = Field(None, gt=0)
    memory_mb: int | None = Field(None, ge=16)
    env: dict[str, str] = Field(default_factory=dict, max_length=64)
    ttl_seconds: int | None = Field(None, ge=60)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not ENV_NAME.match(name) or "\0" in value or len(value) > 4096:
                raise ValueError(f"invalid environment variable {name!r}")
        return v


class ContainerService:
    def __init__(self, db: Database, settings: HubSettings, engine: Engine, broker: Broker) -> None:
        self.db = db
        self.settings = settings
        self.engine = engine
        self.broker = broker
        self.available = False
        self.running_execs: dict[str, int] = defaultdict(int)
        self.last_active: dict[str, float] = {}
        self._pool: dict[str, list[str]] = defaultdict(list)  # image ref -> docker ids
        self._user_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._image_users: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refill = asyncio.Event()
        self.ready = asyncio.Event()
        self.instance = settings.instance_id or _instance_id(settings)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if not self.settings.docker_enabled:
            return
        try:
            await self.engine.ping()
        except EngineError as exc:
            log.warning("containers are unavailable: %s", exc.message)
            return
        self.available = True
        # Reconciling can take a while (each orphan is a removal): the hub serves
        # meanwhile, and container calls wait for it.
        self._spawn(self._settle())

    async def _settle(self) -> None:
        try:
            await self.reconcile()
        except Exception:
            log.exception("reconciling containers failed")
        self.ready.set()
        self._spawn(self._reaper())
        self._spawn(self._pool_filler())
        self._refill.set()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Pool containers are ours alone; user containers outlive a hub restart.
        for ids in self._pool.values():
            for docker_id in ids:
                with contextlib.suppress(Exception):
                    await self.engine.remove(docker_id)
        self._pool.clear()
        if self.available:  # the pool's network too (the engine has a few dozen at most)
            with contextlib.suppress(Exception):
                await self.engine.remove_network(f"{POOL_NETWORK}-{self.instance}")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _require(self) -> None:
        if not self.available:
            raise EngineError(
                "Containers are not available on this hub (no Docker engine).",
                code="containers_unavailable",
            )
        await self.ready.wait()

    # -- the record ---------------------------------------------------------

    def to_json(self, c: Container) -> dict[str, Any]:
        return {
            "id": c.id,
            "name": c.name,
            "image": c.image,
            "status": c.status,
            "created_at": iso(c.created_at),
            "expires_at": iso(c.expires_at),
            "ended_at": iso(c.ended_at),
            "end_reason": c.end_reason,
            "limits": {k: v for k, v in c.limits.items() if k != "env"},
        }

    async def settled(self) -> None:
        """The record is only trustworthy once the start-up reconcile has run."""
        if self.available:
            await self.ready.wait()

    async def list_for(self, user_id: str) -> list[Container]:
        await self.settled()
        async with self.db.session() as s:
            rows = await s.scalars(
                select(Container)
                .where(Container.user_id == user_id, Container.status == "running")
                .order_by(Container.created_at.desc())
            )
            return list(rows)

    async def get(self, user_id: str, container_id: str) -> Container:
        await self.settled()
        missing = NotFound("No such container.", code="container_not_found")
        return await self.db.owned(
            Container, "ctr", container_id, user_id, missing, lambda r: r.status != "removed"
        )

    async def running(self, user_id: str, container_id: str) -> Container:
        row = await self.get(user_id, container_id)
        if row.status != "running" or row.docker_id is None:
            raise Conflict("The container is not running.", code="container_stopped")
        return row

    # -- create -------------------------------------------------------------

    def _resolve_image(self, requested: str | None) -> str:
        catalog = self.settings.images
        name = requested or self.settings.default_image
        if name in catalog:
            return catalog[name]
        if name in catalog.values():
            return name
        raise InvalidRequest(
            f"image: {name!r} is not in this hub's catalog ({', '.join(sorted(catalog))}).",
            details={"field": "image", "allowed": sorted(catalog)},
        )

    def _limits(self, body: CreateContainer) -> dict[str, Any]:
        s = self.settings
        cpus = body.cpus if body.cpus is not None else s.container_cpus_default
        memory = body.memory_mb if body.memory_mb is not None else s.container_memory_mb_default
        ttl = body.ttl_seconds if body.ttl_seconds is not None else s.container_ttl_default
        for field, value, cap in (
            ("cpus", cpus, s.container_cpus_max),
            ("memory_mb", memory, s.container_memory_mb_max),
            ("ttl_seconds", ttl, s.container_ttl_max),
        ):
            if value > cap:
                raise InvalidRequest(
                    f"{field}: at most {cap} on this hub.", details={"field": field, "max": cap}
                )
        return {
            "cpus": cpus,
            "memory_mb": memory,
            "pids": s.container_pids_limit,
            "ttl_seconds": ttl,
            "idle_timeout_seconds": s.container_idle_timeout,
            "network": s.container_network,
            "read_only": s.container_read_only,
            "env": body.env,
        }

    async def create(self, user_id: str, body: CreateContainer) -> Container:
        await self._require()
        ref = self._resolve_image(body.image)
        limits = self._limits(body)
        async with self._user_locks[user_id]:
            async with self.db.session() as s:
                count = len(
                    list(
                        await s.scalars(
                            select(Container.id).where(
                                Container.user_id == user_id,
                                Container.status.in_(("creating", "running")),
                            )
                        )
                    )
                )
            plan = await plans.check_containers(self.db, self.settings, user_id, count)
            requested = {
                "cpus": body.cpus,
                "memory_mb": body.memory_mb,
                "ttl_seconds": body.ttl_seconds,
            }
            limits = plans.fit_container(plan, requested, limits)
            cid = new_id("ctr")
            row = Container(
                id=cid,
                user_id=user_id,
                name=body.name or f"box-{cid[-6:]}",
                image=ref,
                expires_at=utcnow() + timedelta(seconds=limits["ttl_seconds"]),
                limits=limits,
            )
            async with self.db.session() as s:
                s.add(row)
                await s.commit()
        try:
            docker_id = await self._claim(ref, user_id, limits) or await self._create_cold(
                ref, user_id, cid, limits
            )
        except BaseException:
            await self._mark(cid, status="removed", end_reason="create_failed")
            raise
        await self._mark(cid, status="running", docker_id=docker_id)
        row.status, row.docker_id = "running", docker_id
        await lifecycle.container_started(self.db, row)
        self.last_active[cid] = time.monotonic()
        self._refill.set()
        return row

    async def _mark(self, cid: str, **values: Any) -> None:
        if values.get("status") == "removed":
            values.setdefault("ended_at", utcnow())
        async with self.db.session() as s:
            await s.execute(update(Container).where(Container.id == cid).values(**values))
            await s.commit()

    async def _image_user(self, ref: str) -> str:
        if ref not in self._image_users:
            api = await self.engine.api()
            info = await self.engine.call(api.inspect_image, ref)
            self._image_users[ref] = (info.get("Config") or {}).get("User") or ""
        return self._image_users[ref]

    async def _ensure_image(self, ref: str) -> None:
        if await self.engine.has_image(ref):
            return
        log.info("pulling %s", ref)
        try:
            await self.engine.pull(ref, progress=lambda line: log.info("%s", line))
        except EngineError as exc:
            raise Unprocessable(
                f"The image {ref} is not on this hub and could not be pulled: {exc.message}",
                code="image_unavailable",
            ) from None

    async def _network(self, user_id: str | None) -> str:
        mode = self.settings.container_network
        if mode != "user":
            return mode
        name = f"rexec-{self.instance}-{user_id}" if user_id else f"{POOL_NETWORK}-{self.instance}"
        await self.engine.ensure_network(name, {LABEL: "1", INSTANCE: self.instance})
        return name

    async def _spec(
        self, ref: str, labels: dict[str, str], network: str, limits: dict[str, Any]
    ) -> dict[str, Any]:
        api = await self.engine.api()
        user = self.settings.container_user or await self._image_user(ref)
        root = user in ("", "root", "0") or user.startswith(("root:", "0:"))
        # Paths inside the container, not on the host.
        tmpfs = {"/tmp": "rw,nosuid,nodev,size=256m"} if limits["read_only"] else None  # noqa: S108
        if tmpfs is not None:
            home = "/root" if root else f"/home/{user.split(':')[0]}"
            tmpfs[home] = f"rw,nosuid,nodev,size=256m,uid={1000 if not root else 0}"
        host_config = api.create_host_config(
            cap_drop=["ALL"],
            cap_add=ROOT_CAPS if root else None,
            security_opt=["no-new-privileges:true"],
            pids_limit=limits["pids"],
            mem_limit=f"{limits['memory_mb']}m",
            memswap_limit=f"{limits['memory_mb']}m",
            cpu_period=CPU_PERIOD,
            cpu_quota=int(limits["cpus"] * CPU_PERIOD),
            network_mode=network,
            read_only=limits["read_only"],
            tmpfs=tmpfs,
            init=True,
            ulimits=[{"Name": "nofile", "Soft": 4096, "Hard": 8192}],
        )
        return {
            "image": ref,
            "command": KEEPALIVE,
            "labels": {LABEL: "1", INSTANCE: self.instance, **labels},
            "host_config": host_config,
            "user": self.settings.container_user or None,
        }

    async def _create_cold(self, ref: str, user_id: str, cid: str, limits: dict[str, Any]) -> str:
        await self._ensure_image(ref)
        network = await self._network(user_id)
        spec = await self._spec(
            ref, {"rexec.container": cid, "rexec.user": user_id}, network, limits
        )
        return await self.engine.run({**spec, "name": f"rexec-{cid}"})

    # -- the warm pool --------------------------------------------------------

    def _pool_limits(self) -> dict[str, Any]:
        return self._limits(CreateContainer.model_validate({}))

    async def _claim(self, ref: str, user_id: str, limits: dict[str, Any]) -> str | None:
        pool = self._pool.get(ref)
        if not pool:
            return None
        docker_id = pool.pop()
        try:
            base = self._pool_limits()
            if (limits["cpus"], limits["memory_mb"]) != (base["cpus"], base["memory_mb"]):
                mem = f"{limits['memory_mb']}m"
                await self.engine.update(
                    docker_id,
                    mem_limit=mem,
                    memswap_limit=mem,
                    cpu_period=CPU_PERIOD,
                    cpu_quota=int(limits["cpus"] * CPU_PERIOD),
                )
            if self.settings.container_network == "user":
                await self.engine.connect(
                    docker_id, await self._network(user_id), f"{POOL_NETWORK}-{self.instance}"
                )
        except Exception as exc:
            log.warning("pool container unusable, creating one: %r", exc)
            with contextlib.suppress(Exception):
                await self.engine.remove(docker_id)
            return None
        return docker_id

    async def _pool_filler(self) -> None:
        size = self.settings.warm_pool_size
        if size <= 0:
            return
        ref = self._resolve_image(None)
        while True:
            await self._refill.wait()
            self._refill.clear()
            try:
                if not await self.engine.has_image(ref):
                    continue
                while len(self._pool[ref]) < size:
                    network = await self._network(None)
                    spec = await self._spec(ref, {"rexec.pool": "1"}, network, self._pool_limits())
                    name = f"rexec-pool-{new_id('ctr')[4:]}"
                    self._pool[ref].append(await self.engine.run({**spec, "name": name}))
            except Exception as exc:
                log.warning("warm pool refill failed: %r", exc)
                await asyncio.sleep(5)
                self._refill.set()

    # -- delete, reconcile, reap -----------------------------------------------

    async def delete(self, user_id: str, container_id: str) -> None:
        row = await self.get(user_id, container_id)
        await self.end(row, "deleted", "The container was deleted.")

    async def end(self, row: Container, reason: str, message: str) -> None:
        """Tell attached clients why, remove the container, close the record."""
        for session in self.broker.for_target(row.id):
            session.notify({"type": "error", "code": f"container_{reason}", "message": message})
        if row.docker_id:
            await self.engine.remove(row.docker_id)
        await self._mark(row.id, status="removed", end_reason=reason)
        await lifecycle.container_ended(self.db, row, reason)
        self.last_active.pop(row.id, None)
        self.running_execs.pop(row.id, None)
        if self.settings.container_network == "user" and not await self.list_for(row.user_id):
            await self.engine.remove_network(f"rexec-{self.instance}-{row.user_id}")

    async def reconcile(self) -> None:
        """Make the engine and the database agree after a (possibly unclean) restart."""
        async with self.db.session() as s:
            rows = list(
                await s.scalars(
                    select(Container).where(Container.status.in_(("creating", "running")))
                )
            )
        known = {r.docker_id for r in rows if r.docker_id}
        present: set[str] = set()
        for c in await self.engine.managed(self.instance):
            if c["Id"] in known and c.get("State") == "running":
                present.add(c["Id"])
            else:
                log.info("removing orphan container %s", c["Id"][:12])
                await self.engine.remove(c["Id"])
        for row in rows:
            if row.docker_id not in present:
                log.info("closing the record of vanished container %s", row.id)
                await self._mark(row.id, status="removed", end_reason="vanished")
                await lifecycle.container_vanished(self.db, self.engine, row)
            else:
                self.last_active[row.id] = time.monotonic()

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reaper_interval)
            try:
                await self.reap()
            except Exception:
                log.exception("reaper pass failed")

    async def reap(self) -> None:
        now = utcnow()
        async with self.db.session() as s:
            rows = list(await s.scalars(select(Container).where(Container.status == "running")))
        for row in rows:
            if row.expires_at <= now:
                await self.end(row, "expired", "The container reached its maximum lifetime.")
            elif self._idle_for(row.id) >= row.limits.get(
                "idle_timeout_seconds", self.settings.container_idle_timeout
            ):
                await self.end(row, "idle", "The container was idle for too long.")

    def _idle_for(self, cid: str) -> float:
        if self.running_execs.get(cid) or self.broker.for_target(cid):
            self.last_active[cid] = time.monotonic()
            return 0.0
        return time.monotonic() - self.last_active.setdefault(cid, time.monotonic())

    # -- programs in a container -----------------------------------------------

    async def open_pty(
        self,
        user_id: str,
        container_id: str,
        command: list[str] | None,
        cols: int,
        rows: int,
        env: dict[str, str] | None = None,
    ) -> tuple[Container, ContainerPty]:
        """`env` adds to the container's own (the SSH gateway passes the client's TERM
        and LANG)."""
        await self._require()
        row = await self.running(user_id, container_id)
        assert row.docker_id is not None
        source = await ContainerPty.start(
            self.engine,
            row.docker_id,
            command,
            cols=cols,
            rows=rows,
            window=self.settings.session_window,
            user=self.settings.container_user or "",
            env=env,
        )
        self.last_active[row.id] = time.monotonic()
        return row, source

    async def open_exec(
        self, user_id: str, container_id: str, argv: list[str], env: dict[str, str]
    ) -> ContainerExec:
        """A started command without a TTY whose output streams (the SSH gateway's exec);
        the caller listens to it and ends it."""
        await self._require()
        row = await self.running(user_id, container_id)
        assert row.docker_id is not None
        exec_id = await self.engine.exec_create(
            row.docker_id,
            argv,
            tty=False,
            env={**row.limits.get("env", {}), **env},
            user=self.settings.container_user or "",
        )
        stream = await self.engine.exec_start(exec_id, tty=False)
        channel = ContainerExec(self.engine, exec_id, stream)
        self.running_execs[row.id] += 1  # a running command keeps the container from idling
        self._spawn(self._exec_ended(row.id, channel))
        return channel

    async def _exec_ended(self, cid: str, channel: ContainerExec) -> None:
        try:
            await channel.done.wait()
        finally:
            if cid in self.running_execs:  # not when the container ended meanwhile
                self.running_execs[cid] -= 1
                self.last_active[cid] = time.monotonic()

    async def exec(self, user_id: str, container_id: str, req: ExecRequest) -> dict[str, Any]:
        await self._require()
        row = await self.running(user_id, container_id)
        assert row.docker_id is not None
        s = self.settings
        limit = min(req.timeout or s.exec_default_timeout, s.exec_max_timeout)
        started = time.monotonic()
        env = {**row.limits.get("env", {}), **req.env}
        self.running_execs[row.id] += 1
        try:
            ooms = await self.engine.oom_kills(row.docker_id)
            exec_id = await self.engine.exec_create(
                row.docker_id,
                req.argv(),
                tty=False,
                env=env,
                workdir=req.workdir,
                user=s.container_user or "",
            )
            stream = await self.engine.exec_start(exec_id, tty=False)
            channel = ContainerExec(self.engine, exec_id, stream)
            collector = ExecCollector(s.exec_output_limit)
            channel.listen(collector)
            result = await collect(channel, collector, req, limit, started)
            after = await self.engine.oom_kills(row.docker_id)
            result["oom_killed"] = ooms is not None and after is not None and after > ooms
            return result
        finally:
            self.running_execs[row.id] -= 1
            self.last_active[row.id] = time.monotonic()


def _instance_id(settings: HubSettings) -> str:
    """This hub's label value, generated once and kept in its data directory."""
    path = settings.data_dir / "instance_id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_id("ctr")[4:16] + "\n")
    return path.read_text().strip()
