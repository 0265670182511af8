"""Where a command or a terminal goes: a container or agent of the caller, by id or by name.

One lookup for every entry point (REST exec, the terminal socket, approvals, MCP tools,
the SSH gateway), so a name works wherever an id does and a missing target reads the same.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from common.errors import Conflict, NotFound
from common.ids import has_prefix
from hub.state import AGENTS, CONTAINERS

Kind = Literal["ctr", "agt"]
BOTH: tuple[Kind, ...] = ("agt", "ctr")


def _missing(ref: str, kinds: tuple[Kind, ...]) -> NotFound:
    if kinds == ("ctr",):
        return NotFound("No such container.", code="container_not_found")
    if kinds == ("agt",):
        return NotFound("No such agent.", code="agent_not_found")
    return NotFound(
        f"No such target {ref!r}: not a container or agent of yours.", code="target_not_found"
    )


async def resolve_target(
    app: web.Application, user_id: str, ref: str, kinds: tuple[Kind, ...] = BOTH
) -> str:
    """The id of the user's container or agent that `ref` (an id or a name) names.

    404 in one shape for a target that does not exist and one that belongs to someone
    else (for an id, its kind's: `container_not_found`, `agent_not_found`); 409
    `ambiguous_target` when a name is shared by several of the caller's targets.
    """
    agents, containers = app[AGENTS], app[CONTAINERS]
    missing = _missing(ref, kinds)
    # An id names its kind: a missing one answers that kind's 404 (container_not_found).
    if has_prefix(ref, "agt"):
        if "agt" not in kinds:
            raise missing
        return (await agents.get(user_id, ref)).id
    if has_prefix(ref, "ctr"):
        if "ctr" not in kinds:
            raise missing
        return (await containers.get(user_id, ref)).id
    found: list[str] = []
    if "agt" in kinds:
        found += [a.id for a in await agents.list(user_id) if a.name == ref]
    if "ctr" in kinds:
        found += [c.id for c in await containers.list_for(user_id) if c.name == ref]
    if len(found) > 1:
        raise Conflict(
            f"{ref!r} names several of your targets ({', '.join(found)}); use an id.",
            code="ambiguous_target",
        )
    if not found:
        raise missing
    return found[0]
