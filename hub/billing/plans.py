"""Plans from config, and the checks every entry point makes against the caller's plan.

A plan's limits: running containers, agents, terminal-session minutes per month,
recording retention, and the largest container (CPUs, memory, lifetime). `None` means
no limit from the plan (the hub's own maxima still apply). Going past a limit answers
402 `plan_limit_reached` with `details.limit` naming it. A user whose plan is no longer
in the config is held to the default plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from common.errors import InvalidRequest, PlanLimitReached
from hub.db.models import Agent, User

if TYPE_CHECKING:
    from hub.db.engine import Database
    from hub.settings import HubSettings


class PlanSpec(BaseModel):
    """One plan as configured (`REXEC_PLANS` JSON or `[plans.<id>]` in the TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    price_cents: int = Field(default=0, ge=0)
    interval: Literal["month", "year"] = "month"
    currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")
    stripe_price_id: str | None = None  # else the Checkout Session carries the price inline
    containers: int | None = Field(default=None, ge=0)
    agents: int | None = Field(default=None, ge=0)
    session_minutes_per_month: int | None = Field(default=None, ge=0)
    recording_retention_days: int | None = Field(default=None, ge=0)
    container_cpus: float | None = Field(default=None, gt=0)
    container_memory_mb: int | None = Field(default=None, ge=16)
    container_ttl_seconds: int | None = Field(default=None, ge=60)

    def limits_json(self) -> dict[str, Any]:
        return {
            "containers": self.containers,
            "agents": self.agents,
            "session_minutes_per_month": self.session_minutes_per_month,
            "recording_retention_days": self.recording_retention_days,
            "container_cpus": self.container_cpus,
            "container_memory_mb": self.container_memory_mb,
            "container_ttl_seconds": self.container_ttl_seconds,
        }


def default_plans() -> dict[str, PlanSpec]:
    return {
        "free": PlanSpec(
            name="Free",
            containers=3,
            agents=3,
            session_minutes_per_month=20 * 60,
            recording_retention_days=7,
            container_cpus=1.0,
            container_memory_mb=1024,
            container_ttl_seconds=8 * 3600,
        ),
        "pro": PlanSpec(
            name="Pro",
            price_cents=1500,
            containers=10,
            agents=20,
            session_minutes_per_month=200 * 60,
            recording_retention_days=90,
            container_cpus=2.0,
            container_memory_mb=4096,
            container_ttl_seconds=24 * 3600,
        ),
        "enterprise": PlanSpec(
            name="Enterprise",
            price_cents=9900,
            containers=50,
            recording_retention_days=365,
        ),
    }


class PlanBook:
    """The configured plans, in config order, and the default one."""

    def __init__(self, plans: dict[str, PlanSpec], default: str) -> None:
        if not plans:
            raise ValueError("at least one plan must be configured")
        if default not in plans:
            names = ", ".join(plans)
            raise ValueError(f"default_plan {default!r} is not one of the plans ({names})")
        self.plans = dict(plans)
        self.default = default

    @classmethod
    def from_settings(cls, settings: HubSettings) -> PlanBook:
        return cls(settings.plans, settings.default_plan)

    def __iter__(self) -> Iterator[tuple[str, PlanSpec]]:
        return iter(self.plans.items())

    def get(self, plan_id: str | None) -> PlanSpec:
        return self.plans.get(plan_id or self.default) or self.plans[self.default]

    def effective_id(self, plan_id: str | None) -> str:
        return plan_id if plan_id in self.plans else self.default

    def require(self, plan_id: str) -> PlanSpec:
        """A plan named in a request: 400 naming `plan` when there is none such."""
        if plan_id not in self.plans:
            raise InvalidRequest(
                f"plan: {plan_id!r} is not a plan here ({', '.join(self.plans)}).",
                details={"field": "plan", "allowed": list(self.plans)},
            )
        return self.plans[plan_id]

    def to_json(self, plan_id: str) -> dict[str, Any]:
        plan = self.plans[plan_id]
        return {
            "id": plan_id,
            "name": plan.name,
            "price_cents": plan.price_cents,
            "interval": plan.interval,
            "limits": plan.limits_json(),
        }


def _limit(limit: str, message: str, plan_id: str, maximum: float | None) -> PlanLimitReached:
    details: dict[str, Any] = {"limit": limit, "plan": plan_id}
    if maximum is not None:
        details["max"] = maximum
    return PlanLimitReached(message, details=details)


async def plan_of(db: Database, settings: HubSettings, user_id: str) -> tuple[str, PlanSpec]:
    book = PlanBook.from_settings(settings)
    async with db.session() as s:
        plan_id = await s.scalar(select(User.plan).where(User.id == user_id))
    effective = book.effective_id(plan_id)
    return effective, book.get(effective)


async def check_containers(
    db: Database, settings: HubSettings, user_id: str, running: int
) -> PlanSpec:
    """Refuse one more container beyond the plan's count (or the hub's per-user cap)."""
    plan_id, plan = await plan_of(db, settings, user_id)
    if plan.containers is not None and running >= plan.containers:
        raise _limit(
            "containers",
            f"The {plan.name} plan runs at most {plan.containers} containers at once; "
            "delete one or upgrade.",
            plan_id,
            plan.containers,
        )
    cap = settings.containers_per_user
    if cap is not None and running >= cap:
        raise _limit(
            "containers",
            f"This hub runs at most {cap} containers per user; delete one first.",
            plan_id,
            cap,
        )
    return plan


def fit_container(
    plan: PlanSpec, requested: dict[str, float | int | None], limits: dict[str, Any]
) -> dict[str, Any]:
    """Hold a container to the plan's size and lifetime.

    An explicit request above the plan is refused (402); a hub default above it is
    lowered to the plan's maximum.
    """
    fitted = dict(limits)
    for field, cap, limit in (
        ("cpus", plan.container_cpus, "container_cpus"),
        ("memory_mb", plan.container_memory_mb, "container_memory_mb"),
        ("ttl_seconds", plan.container_ttl_seconds, "container_ttl_seconds"),
    ):
        if cap is None or fitted[field] <= cap:
            continue
        if requested.get(field) is not None:
            raise PlanLimitReached(
                f"{field}: the {plan.name} plan allows at most {cap}.",
                details={"limit": limit, "field": field, "max": cap},
            )
        fitted[field] = cap
    return fitted


async def check_agents(db: Database, settings: HubSettings, user_id: str) -> None:
    """Refuse a new agent (or its registration token) beyond the plan's count."""
    plan_id, plan = await plan_of(db, settings, user_id)
    if plan.agents is None:
        return
    async with db.session() as s:
        count = await s.scalar(
            select(func.count(Agent.id)).where(Agent.user_id == user_id, Agent.deleted_at.is_(None))
        )
    if (count or 0) >= plan.agents:
        raise _limit(
            "agents",
            f"The {plan.name} plan has at most {plan.agents} agents; remove one or upgrade.",
            plan_id,
            plan.agents,
        )


async def check_session_minutes(db: Database, settings: HubSettings, user_id: str) -> None:
    """Refuse a new terminal session once this month's session minutes are spent."""
    from hub.billing import usage

    plan_id, plan = await plan_of(db, settings, user_id)
    if plan.session_minutes_per_month is None:
        return
    start, end = usage.month_of()
    used = await usage.seconds(db, user_id, usage.SESSION, start, end)
    if used >= plan.session_minutes_per_month * 60:
        raise _limit(
            "session_minutes_per_month",
            f"This month's {plan.session_minutes_per_month} session minutes of the "
            f"{plan.name} plan are used up.",
            plan_id,
            plan.session_minutes_per_month,
        )
