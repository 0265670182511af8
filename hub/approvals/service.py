"""Supervision of AI commands: policies, held commands (approvals), and running them.

The hub that receives a supervised exec owns it: it subscribes to `approval:{id}`
before the approval exists, records it, answers 202, and waits in a task of its own
for a decision; then it runs the command itself (typed into a live session on the
target when there is one, else through exec) and records the result. Deciding only
records and publishes, so a decision made on any hub reaches the owner through the
bus (hub/bus.py). Every change of status is a conditional UPDATE on `status =
'pending'`: of a decision and an expiry racing, exactly one wins.

Changes are published on `approval:{id}` (`{"approval": ...}`, for long-polls and the
owner) and on `target:{target}` (`{"type": "approval", "approval": ...}`), which live
sessions on that target forward to their clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import func, select, update

from common.errors import ApiError, Conflict, Forbidden, NotFound
from common.ids import new_id
from hub import audit
from hub.api.http import iso
from hub.approvals.classifier import command_text
from hub.approvals.guard import Action, judge, keys
from hub.approvals.policy import PolicyBody, Rules, Verdict
from hub.approvals.visible import run_in_session
from hub.bus import Bus
from hub.db.engine import Database
from hub.db.models import Approval, Policy, utcnow
from hub.execution import ExecRequest
from hub.sessions.broker import Broker, Session
from hub.settings import HubSettings
from hub.tokens import Principal

log = logging.getLogger("rexec.hub.approvals")
Runner = Callable[[ExecRequest], Awaitable[dict[str, Any]]]
Status = Literal["pending", "approved", "completed", "rejected", "expired"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "completed", "rejected", "expired")
FINAL = frozenset({"completed", "rejected", "expired"})
LABEL = 200  # characters of a command shown in a recording's marker
MAX_LIST = 200
MAX_PENDING = 100  # held commands per user at once: each has a task waiting on it


def _short(cmd: Any) -> str:
    text = command_text(cmd)
    return text if len(text) <= LABEL else text[: LABEL - 1] + "…"


def error_result(err: ApiError) -> dict[str, Any]:
    """A command that could not be started still answers in exec's shape."""
    return {
        "exit_code": -1,
        "stdout": "",
        "stderr": err.message,
        "stdout_truncated": False,
        "stderr_truncated": False,
        "truncated": False,
        "duration_ms": 0,
        "timed_out": False,
        "error": {"code": err.code, "message": err.message},
    }


class Supervisor:
    def __init__(self, db: Database, settings: HubSettings, bus: Bus, broker: Broker) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self.broker = broker
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        # Ends agents' live connections on a target (tag, why): set by the app to
        # hub/commands.py's kick, which reaches every hub.
        self.on_change: Callable[[str, str, Verdict], Awaitable[None]] | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._spawn(self._sweeper())

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._watchers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- policies -------------------------------------------------------------

    def policy_json(self, target: str, row: Policy | None) -> dict[str, Any]:
        if row is None:
            return {
                "target": target,
                "mode": self.settings.approval_default_mode,
                "allow": [],
                "deny": [],
                "paused": False,
                "updated_at": None,
            }
        return {
            "target": target,
            "mode": row.mode,
            "allow": list(row.allow),
            "deny": list(row.deny),
            "paused": row.paused,
            "updated_at": iso(row.updated_at),
        }

    async def _policy(self, target: str) -> Policy | None:
        async with self.db.session() as s:
            return await s.get(Policy, target)

    async def rules(self, target: str) -> Rules:
        row = await self._policy(target)
        if row is None:
            return Rules(self.settings.approval_default_mode)
        return Rules(row.mode, tuple(row.allow), tuple(row.deny), row.paused)  # type: ignore[arg-type]

    async def check(
        self, kind: str, target: str, action: Action, cmd: str | list[str] | None = None
    ) -> Verdict:
        """The one supervision check (hub/approvals/guard.py) against the policy now (a
        person's credential needs no policy read)."""
        rules = await self.rules(target) if kind != "person" else Rules("auto")
        return judge(kind, rules, action, cmd)

    async def get_policy(self, target: str) -> dict[str, Any]:
        return self.policy_json(target, await self._policy(target))

    async def _save(self, user_id: str, target: str, **values: Any) -> Policy:
        async with self.db.session() as s:
            row = await s.get(Policy, target)
            if row is None:
                row = Policy(
                    target=target,
                    user_id=user_id,
                    mode=self.settings.approval_default_mode,
                    allow=[],
                    deny=[],
                    paused=False,
                )
                s.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            await s.commit()
        return row

    async def set_policy(
        self, principal: Principal, target: str, body: PolicyBody, ip: str | None = None
    ) -> dict[str, Any]:
        row = await self._save(
            principal.user.id, target, mode=body.mode, allow=body.allow, deny=body.deny
        )
        rules = Rules(body.mode, tuple(body.allow), tuple(body.deny), row.paused)
        if keys(rules).action != "run" and self.on_change is not None:
            # Agents typing under the old policy may not under this one: they reconnect
            # and are attached read-only.
            await self.on_change(target, "ai_keys", keys(rules))
        await audit.record(
            self.db,
            "policy.changed",
            user_id=principal.user.id,
            target=target,
            ip=ip,
            detail={"mode": body.mode, "allow": body.allow, "deny": body.deny, **_by(principal)},
        )
        return self.policy_json(target, row)

    async def pause(
        self, principal: Principal, target: str, paused: bool, ip: str | None = None
    ) -> dict[str, Any]:
        """The kill switch: from now on the target refuses AI commands, and those waiting
        are rejected."""
        row = await self._save(principal.user.id, target, paused=paused)
        action = "policy.paused" if paused else "policy.resumed"
        await audit.record(
            self.db, action, user_id=principal.user.id, target=target, ip=ip, detail=_by(principal)
        )
        if paused and self.on_change is not None:  # the agents' live sockets close now
            await self.on_change(target, "ai_target", keys(Rules("auto", paused=True)))
        if paused:
            async with self.db.session() as s:
                waiting = list(
                    await s.scalars(
                        select(Approval.id).where(
                            Approval.target == target, Approval.status == "pending"
                        )
                    )
                )
            for approval_id in waiting:
                await self._finish(
                    approval_id,
                    "rejected",
                    "AI execution on this target was paused by its owner.",
                    principal,
                )
        return self.policy_json(target, row)

    # -- submitting -------------------------------------------------------------

    async def submit(
        self,
        principal: Principal,
        target: str,
        req: ExecRequest,
        run: Runner,
        ip: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """An AI's supervised exec: 200 with the result, or 202 with a pending approval."""
        verdict = await self.check("agent", target, "run", req.cmd)
        user_id = principal.user.id
        who = principal.token_id or user_id
        if verdict.action == "refuse":
            await audit.record(
                self.db,
                "ai.command_refused",
                user_id=user_id,
                target=target,
                ip=ip,
                detail={"cmd": req.cmd, "reason": verdict.reason, "by": who},
            )
            details = {"pattern": verdict.pattern} if verdict.pattern else None
            raise Forbidden(verdict.reason, code=verdict.code, details=details)
        if verdict.action == "run":
            session = self._session_for(target, req.session, user_id)
            if session is not None:
                session.mark(f"AI ran ({verdict.reason}): {_short(req.cmd)}")
            result = await run(req)
            await audit.record(
                self.db,
                "ai.command_ran",
                user_id=user_id,
                target=target,
                ip=ip,
                detail={
                    "cmd": req.cmd,
                    "why": verdict.reason,
                    "exit_code": result.get("exit_code"),
                    "by": who,
                },
            )
            return 200, result
        async with self.db.session() as s:
            waiting = await s.scalar(
                select(func.count(Approval.id)).where(
                    Approval.user_id == user_id, Approval.status == "pending"
                )
            )
        if (waiting or 0) >= MAX_PENDING:
            raise Conflict(
                f"{MAX_PENDING} commands already wait for a decision; wait for those first.",
                code="too_many_pending",
            )
        created: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()
        self._spawn(self._own(principal, target, req, run, verdict, ip, created))
        row = await created
        return 202, {"approval": {"id": row.id, "status": row.status, "cmd": row.cmd}}

    def _session_for(self, target: str, named: str | None, user_id: str) -> Session | None:
        """The named live session on the target, else the newest live one there. A session
        taken up after a restart and not yet rejoined is skipped: its first client decides
        where its output resumes."""

        def usable(s: Session) -> bool:
            return s.live and s.user_id == user_id and s.target == target and not s.awaiting_offset

        if named is not None:
            session = self.broker.get(named)
            if session is not None and usable(session):
                return session
        live = [s for s in self.broker.for_target(target) if usable(s)]
        return max(live, key=lambda s: s.started_at, default=None)

    async def _own(
        self,
        principal: Principal,
        target: str,
        req: ExecRequest,
        run: Runner,
        verdict: Verdict,
        ip: str | None,
        created: asyncio.Future[Approval],
    ) -> None:
        """Create the approval, wait for its decision, run it if approved."""
        approval_id = new_id("apr")
        try:
            async with self.bus.subscribe(f"approval:{approval_id}") as sub:
                session = self._session_for(target, req.session, principal.user.id)
                row = Approval(
                    id=approval_id,
                    user_id=principal.user.id,
                    target=target,
                    session_id=session.id if session is not None else None,
                    cmd=req.cmd,
                    requested_by=principal.token_id or principal.user.id,
                    status="pending",
                    reason=verdict.reason,
                    expires_at=utcnow() + timedelta(seconds=self.settings.approval_ttl),
                )
                async with self.db.session() as s:
                    s.add(row)
                    await s.commit()
                created.set_result(row)
                await audit.record(
                    self.db,
                    "approval.requested",
                    user_id=row.user_id,
                    target=row.id,
                    ip=ip,
                    detail={
                        "on": target,
                        "cmd": req.cmd,
                        "reason": verdict.reason,
                        "by": row.requested_by,
                    },
                )
                self._mark(row.session_id, f"AI request {row.id}: {_short(row.cmd)}")
                await self._publish(row)
                while row.status == "pending":
                    left = (row.expires_at - utcnow()).total_seconds()
                    if left <= 0:
                        await self._finish(row.id, "expired", self._expiry_reason(), None)
                    else:
                        await sub.get(left)
                    row = await self._read(row.id)
            if row.status == "approved":
                await self._run(row, req, run)
        except asyncio.CancelledError:
            if not created.done():
                created.cancel()
            raise
        except Exception as exc:
            if not created.done():  # the caller gets the error instead of a 202
                created.set_exception(exc)
                return
            log.exception("supervising %s failed", approval_id)

    def _expiry_reason(self) -> str:
        return f"No one decided within {int(self.settings.approval_ttl)} s; it was not run."

    async def _run(self, row: Approval, req: ExecRequest, run: Runner) -> None:
        edited = req.model_copy(update={"cmd": row.cmd})
        s = self.settings
        timeout = min(req.timeout or s.exec_default_timeout, s.exec_max_timeout)
        session = self._session_for(row.target, row.session_id, row.user_id)
        try:
            if session is not None:
                result = await run_in_session(
                    session,
                    row.cmd,
                    limit_s=timeout,
                    limit=s.live_capture_bytes,
                    user_id=row.user_id,
                )
            else:
                result = await run(edited)
        except ApiError as err:
            result = error_result(err)
        except Exception:
            log.exception("running approved %s failed", row.id)
            result = error_result(ApiError("The command could not be run.", code="exec_failed"))
        async with self.db.session() as db:
            await db.execute(
                update(Approval)
                .where(Approval.id == row.id, Approval.status == "approved")
                .values(status="completed", result=result)
            )
            await db.commit()
        done = await self._read(row.id)
        self._mark(
            session.id if session else None,
            f"AI result {row.id}: exit {result.get('exit_code')}"
            + (" (timed out)" if result.get("timed_out") else ""),
        )
        await audit.record(
            self.db,
            "approval.completed",
            user_id=row.user_id,
            target=row.id,
            detail={
                "on": row.target,
                "cmd": row.cmd,
                "exit_code": result.get("exit_code"),
                "session": session.id if session else None,
            },
        )
        await self._publish(done)

    # -- deciding -------------------------------------------------------------

    async def _read(self, approval_id: str) -> Approval:
        async with self.db.session() as s:
            row = await s.get(Approval, approval_id)
        assert row is not None
        return row

    async def get(self, user_id: str, approval_id: str) -> Approval:
        missing = NotFound("No such approval.", code="approval_not_found")
        return await self.db.owned(Approval, "apr", approval_id, user_id, missing)

    async def find(self, user_id: str, status: str | None) -> list[Approval]:
        query = select(Approval).where(Approval.user_id == user_id)
        if status is not None:
            query = query.where(Approval.status == status)
        query = query.order_by(Approval.created_at.desc(), Approval.id.desc()).limit(MAX_LIST)
        async with self.db.session() as s:
            return list(await s.scalars(query))

    async def wait(self, user_id: str, approval_id: str, seconds: float) -> Approval:
        """The approval once it is final (decided and run, rejected, expired), or as it is
        after `seconds`. Subscribes first, then reads: no change can fall in between."""
        async with self.bus.subscribe(f"approval:{approval_id}") as sub:
            row = await self.get(user_id, approval_id)
            deadline = asyncio.get_running_loop().time() + seconds
            while row.status not in FINAL:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0 or await sub.get(left) is None:
                    break
                row = await self._read(approval_id)
        return row

    async def approve(
        self, principal: Principal, approval_id: str, cmd: str | list[str] | None, ip: str | None
    ) -> Approval:
        row = await self.get(principal.user.id, approval_id)
        values: dict[str, Any] = {}
        if cmd is not None and cmd != row.cmd:
            values = {"cmd": cmd, "original_cmd": row.cmd}
        won = await self._finish(row.id, "approved", None, principal, ip=ip, **values)
        if not won:
            await self._refuse_decided(row.id)
        return await self._read(row.id)

    async def reject(
        self, principal: Principal, approval_id: str, reason: str | None, ip: str | None
    ) -> Approval:
        row = await self.get(principal.user.id, approval_id)
        why = reason or "Rejected by a person."
        if not await self._finish(row.id, "rejected", why, principal, ip=ip):
            await self._refuse_decided(row.id)
        return await self._read(row.id)

    async def _refuse_decided(self, approval_id: str) -> None:
        row = await self._read(approval_id)
        if row.status == "pending":  # past its time, not yet swept
            await self._finish(row.id, "expired", self._expiry_reason(), None)
            row = await self._read(approval_id)
        raise Conflict(
            f"The approval is already {row.status}.",
            code="approval_decided",
            details={"status": row.status},
        )

    async def _finish(
        self,
        approval_id: str,
        status: Status,
        reason: str | None,
        principal: Principal | None,
        *,
        ip: str | None = None,
        **values: Any,
    ) -> bool:
        """Move a pending approval to `status`; False when it was no longer pending (or,
        for a decision, past its time)."""
        now = utcnow()
        query = update(Approval).where(Approval.id == approval_id, Approval.status == "pending")
        if status != "expired":
            query = query.where(Approval.expires_at > now)
        by = (principal.token_id or principal.user.id) if principal else None
        changes: dict[str, Any] = {"status": status, "decided_at": now, "decided_by": by, **values}
        if reason is not None:
            changes["reason"] = reason
        async with self.db.session() as s:
            done = await s.execute(query.values(**changes))
            await s.commit()
        if getattr(done, "rowcount", 0) != 1:
            return False
        row = await self._read(approval_id)
        if status == "approved":
            label = f"approved {row.id} by {by}: {_short(row.cmd)}"
            if row.original_cmd is not None:
                label += f" (edited from: {_short(row.original_cmd)})"
        else:
            label = f"{status} {row.id}" + (f" by {by}" if by else "") + f": {row.reason}"
        self._mark(row.session_id, label)
        detail: dict[str, Any] = {"on": row.target, "cmd": row.cmd, "by": by or "hub"}
        if row.original_cmd is not None:
            detail["original_cmd"] = row.original_cmd
        if status != "approved":
            detail["reason"] = row.reason
        await audit.record(
            self.db, f"approval.{status}", user_id=row.user_id, target=row.id, ip=ip, detail=detail
        )
        await self._publish(row)
        return True

    def _mark(self, session_id: str | None, label: str) -> None:
        session = self.broker.get(session_id) if session_id else None
        if session is not None:
            session.mark(label)

    # -- notifications ----------------------------------------------------------

    def to_json(self, row: Approval) -> dict[str, Any]:
        return {
            "id": row.id,
            "target": row.target,
            "session": row.session_id,
            "cmd": row.cmd,
            "original_cmd": row.original_cmd,
            "requested_by": row.requested_by,
            "status": row.status,
            "reason": row.reason,
            "created_at": iso(row.created_at),
            "expires_at": iso(row.expires_at),
            "decided_by": row.decided_by,
            "decided_at": iso(row.decided_at),
            "result": row.result if row.status == "completed" else None,
        }

    async def count_pending(self) -> int:
        """Service-wide, for the `rexec_approvals_pending` gauge."""
        async with self.db.session() as s:
            count = await s.scalar(
                select(func.count()).select_from(Approval).where(Approval.status == "pending")
            )
        return int(count or 0)

    async def pending_messages(self, target: str) -> list[dict[str, Any]]:
        """The approval messages of what waits on `target` now, oldest first."""
        async with self.db.session() as s:
            rows = await s.scalars(
                select(Approval)
                .where(Approval.target == target, Approval.status == "pending")
                .order_by(Approval.created_at, Approval.id)
                .limit(MAX_LIST)
            )
            return [{"type": "approval", "approval": self.to_json(r)} for r in rows]

    async def _publish(self, row: Approval) -> None:
        data = self.to_json(row)
        await self.bus.publish(f"approval:{row.id}", {"approval": data})
        await self.bus.publish(f"target:{row.target}", {"type": "approval", "approval": data})

    def session_created(self, session: Session) -> None:
        """Forward the target's approval messages to this session's clients."""
        target = session.target
        if target not in self._watchers:
            task = asyncio.get_running_loop().create_task(self._forward(target))
            self._watchers[target] = task

    async def session_ended(self, session: Session) -> None:
        if not self.broker.for_target(session.target):
            task = self._watchers.pop(session.target, None)
            if task is not None:
                task.cancel()

    async def _forward(self, target: str) -> None:
        async with self.bus.subscribe(f"target:{target}") as sub:
            async for message in sub:
                for session in self.broker.for_target(target):
                    session.notify(message)

    async def _lost(self) -> None:
        """Approved commands whose hub stopped while running them: no result will come."""
        limit = utcnow() - timedelta(seconds=self.settings.exec_max_timeout + LOST_AFTER)
        async with self.db.session() as s:
            stuck = list(
                await s.scalars(
                    select(Approval.id)
                    .where(Approval.status == "approved", Approval.decided_at < limit)
                    .limit(500)
                )
            )
        lost = error_result(
            ApiError("The hub running this command stopped before it finished.", code="hub_lost")
        )
        for approval_id in stuck:
            async with self.db.session() as s:
                done = await s.execute(
                    update(Approval)
                    .where(Approval.id == approval_id, Approval.status == "approved")
                    .values(status="completed", result=lost)
                )
                await s.commit()
            if getattr(done, "rowcount", 0) == 1:
                await self._publish(await self._read(approval_id))

    async def _sweeper(self) -> None:
        """Expire what nobody decided in time, including approvals whose owning hub is
        gone (an owning hub expires its own at their deadline)."""
        while True:
            await asyncio.sleep(self.settings.approval_sweep_interval)
            try:
                async with self.db.session() as s:
                    overdue = list(
                        await s.scalars(
                            select(Approval.id)
                            .where(Approval.status == "pending", Approval.expires_at <= utcnow())
                            .limit(500)
                        )
                    )
                for approval_id in overdue:
                    await self._finish(approval_id, "expired", self._expiry_reason(), None)
                await self._lost()
            except Exception:
                log.exception("expiring approvals failed")


LOST_AFTER = 120.0  # seconds past the longest exec before a running approval is given up


def _by(principal: Principal) -> dict[str, str]:  # who did it, for the audit trail
    return {"by": principal.token_id or principal.user.id}
