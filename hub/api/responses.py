"""Typed answers of the endpoints, for the OpenAPI document (hub/openapi.py).

The handlers build their JSON with the services' `to_json`; these models describe that
JSON so the document (and the SDKs and schemathesis reading it) know each answer's
shape. Unknown fields are allowed: the contract grows by adding fields (API.md v1.1).
A test (tests/hub/test_openapi.py) holds every live answer to these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(Answer):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorAnswer(Answer):
    """Every error: API.md's one shape."""

    error: ErrorDetail


class User(Answer):
    id: str
    email: str
    name: str | None
    plan: str
    created_at: str
    passcode_enabled: bool


class TokenPair(Answer):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    user: User


class Registered(Answer):
    user: User


class Limits(Answer):
    cpus: float | None = None
    memory_mb: int | None = None


class Container(Answer):
    id: str
    name: str | None
    image: str
    status: str
    created_at: str
    expires_at: str | None


class Containers(Answer):
    containers: list[Container]


class Image(Answer):
    name: str


class Images(Answer):
    images: list[Image]


class Agent(Answer):
    id: str
    name: str
    hostname: str | None
    status: Literal["online", "offline"]


class Agents(Answer):
    agents: list[Agent]


class AgentToken(Answer):
    token: str
    expires_at: str
    install_command: str


class ExecResult(Answer):
    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool


class Recording(Answer):
    available: bool


class SessionInfo(Answer):
    id: str
    target: str
    status: Literal["live", "ended"]
    started_at: str
    ended_at: str | None


class Sessions(Answer):
    sessions: list[SessionInfo]


class Approval(Answer):
    id: str
    target: str
    cmd: str
    status: str
    created_at: str


class Approvals(Answer):
    approvals: list[Approval]


class Held(Answer):
    """202 from exec: the command waits for a person's approval."""

    approval: Approval


class PlanLimits(Answer):
    containers: int | None
    agents: int | None
    session_minutes_per_month: int | None
    recording_retention_days: int | None


class Plan(Answer):
    id: str
    name: str
    price_cents: int
    interval: str | None
    limits: PlanLimits


class Plans(Answer):
    plans: list[Plan]


class Health(Answer):
    status: str


# What each operation answers on success, keyed as "METHOD /path" (the route table's
# canonical path). An operation absent here is documented as "a JSON object".
RESPONSES: dict[str, type[BaseModel]] = {
    "POST /api/register": Registered,
    "POST /api/login": TokenPair,
    "POST /api/refresh": TokenPair,
    "GET /api/user": User,
    "GET /api/containers": Containers,
    "POST /api/containers": Container,
    "GET /api/containers/{id}": Container,
    "POST /api/containers/{id}/exec": ExecResult,
    "POST /api/agents/{id}/exec": ExecResult,
    "GET /api/images": Images,
    "GET /api/agents": Agents,
    "GET /api/agents/{id}": Agent,
    "POST /api/agents/tokens": AgentToken,
    "GET /api/sessions": Sessions,
    "GET /api/sessions/{id}": SessionInfo,
    "GET /api/approvals": Approvals,
    "GET /api/approvals/{id}": Approval,
    "POST /api/approvals/{id}/approve": Approval,
    "POST /api/approvals/{id}/reject": Approval,
    "GET /api/billing/plans": Plans,
    "GET /healthz": Health,
}

# Further answers besides the success one (and errors), by operation and status.
ALSO: dict[str, dict[int, type[BaseModel]]] = {
    "POST /api/containers/{id}/exec": {202: Held},
    "POST /api/agents/{id}/exec": {202: Held},
}
