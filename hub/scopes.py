"""API token scopes, and the one table that says which scope each endpoint needs.

A session's access token (a JWT from sign-in) carries every scope (`all`). An API
token carries the scopes it was made with; every token may read. Endpoints not in the
table need `read` for GET and HEAD and `all` for anything else, so an endpoint added
later is closed to narrow tokens until it is placed here.
"""

from __future__ import annotations

from collections.abc import Iterable

READ, CONTAINERS, EXEC, AGENTS, ALL = "read", "containers", "exec", "agents", "all"
SCOPES = (READ, CONTAINERS, EXEC, AGENTS, ALL)
DEFAULT_TOKEN_SCOPES = (READ, CONTAINERS, EXEC, AGENTS)

REQUIRED: dict[tuple[str, str], str] = {
    # Opening a terminal runs programs: it is exec, although the upgrade is a GET.
    ("GET", "/ws/terminal/{id}"): EXEC,
    ("POST", "/api/containers"): CONTAINERS,
    ("DELETE", "/api/containers/{id}"): CONTAINERS,
    ("POST", "/api/containers/{id}/exec"): EXEC,
    ("POST", "/api/agents/tokens"): AGENTS,
    ("DELETE", "/api/agents/{id}"): AGENTS,
    ("POST", "/api/agents/{id}/exec"): EXEC,
    ("POST", "/api/sessions/{id}/share"): EXEC,
    ("DELETE", "/api/sessions/{id}"): EXEC,
    # Everything else that changes state needs `all`: account, tokens, passcode, keys,
    # billing, and supervision (an AI's token must not approve its own commands or
    # loosen the policy that holds them).
}


# Where a share link (`?share=`) may stand in for the token's own powers.
JOINABLE = {("GET", "/ws/terminal/{id}")}


def required_scope(method: str, route: str, *, via_share: bool = False) -> str:
    method = method.upper()
    if via_share and (method, route) in JOINABLE:
        return READ  # joining through a share link: the link grants the role, not the token
    found = REQUIRED.get((method, route))
    if found is not None:
        return found
    return READ if method in ("GET", "HEAD", "OPTIONS") else ALL


def allows(granted: Iterable[str], needed: str) -> bool:
    held = set(granted)
    return ALL in held or needed in held or (needed == READ and bool(held))
