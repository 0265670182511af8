"""The audit log: who did what, from where and when; each user reads their own events.

Actions are dotted names, noun first: `login.succeeded`, `login.failed`,
`passcode.enabled`, `passcode.disabled`, `passcode.recovery_codes`, `token.created`,
`token.used`, `token.revoked`, `refresh.reused`, `logout`, `container.created`,
`container.ended`, `agent.token_created`, `agent.registered`, `agent.deleted`,
`plan.changed`, `billing.checkout_started`, `billing.payment_failed`. Shares and
approvals record theirs through the same `record`. Events never hold a secret: no
password, token or code, only ids, addresses and reasons.

Recording never fails the action it describes: a write that fails is logged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from common.ids import new_id
from hub.db.engine import Database
from hub.db.models import AuditEvent

log = logging.getLogger("rexec.hub.audit")


async def record(
    db: Database,
    action: str,
    *,
    user_id: str | None = None,
    target: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    try:
        async with db.session() as s:
            s.add(
                AuditEvent(
                    id=new_id("evt"),
                    user_id=user_id,
                    action=action,
                    target=target,
                    ip=ip,
                    detail=detail or None,
                )
            )
            await s.commit()
    except Exception:
        log.exception("could not record the audit event %s", action)


async def events_for(
    db: Database, user_id: str, *, limit: int = 100, before: datetime | None = None
) -> list[AuditEvent]:
    """The user's own events, newest first."""
    query = select(AuditEvent).where(AuditEvent.user_id == user_id)
    if before is not None:
        query = query.where(AuditEvent.created_at < before)
    query = query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    async with db.session() as s:
        return list(await s.scalars(query))
