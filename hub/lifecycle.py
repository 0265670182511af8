"""What the container service and the agent registry report as things happen: one call
records the audit event and opens or closes the usage interval. None of these fails
the operation it reports: a failure is logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hub import audit
from hub.billing import usage
from hub.db.engine import Database

if TYPE_CHECKING:
    from hub.containers.engine import Engine
    from hub.db.models import Agent, Container

log = logging.getLogger("rexec.hub.lifecycle")


async def container_started(db: Database, row: Container) -> None:
    try:
        await usage.start(db, row.user_id, usage.CONTAINER, row.id)
    except Exception:
        log.exception("could not meter the start of %s", row.id)
    await audit.record(
        db, "container.created", user_id=row.user_id, target=row.id, detail={"image": row.image}
    )


async def container_ended(db: Database, row: Container, reason: str) -> None:
    try:
        await usage.end(db, row.id)
    except Exception:
        log.exception("could not meter the end of %s", row.id)
    await audit.record(
        db, "container.ended", user_id=row.user_id, target=row.id, detail={"reason": reason}
    )


async def container_vanished(db: Database, engine: Engine, row: Container) -> None:
    """Found gone at start: it ended when Docker says, else at the last heartbeat."""
    try:
        last = await usage.last_heartbeat(db, row.id)
        ended = None
        if last is not None and row.docker_id:
            ended = await usage.ended_in_docker(engine, row.docker_id, last)
        await usage.end(db, row.id, ended or last)
    except Exception:
        log.exception("could not meter the end of %s", row.id)
    await audit.record(
        db, "container.ended", user_id=row.user_id, target=row.id, detail={"reason": "vanished"}
    )


async def agent_event(db: Database, action: str, agent: Agent) -> None:
    await audit.record(
        db, action, user_id=agent.user_id, target=agent.id, detail={"name": agent.name}
    )
