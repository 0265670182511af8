"""The hub's one settings object: defaults, then a TOML config file, then `REXEC_*`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.billing.plans import PlanBook, PlanSpec, default_plans
from hub.ratelimit import build_rules


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rexec-hub"


class HubSettings(BaseSettings):
    """Everything the hub reads from its environment, validated once at start."""

    model_config = SettingsConfigDict(env_prefix="REXEC_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None  # default: SQLite in data_dir
    redis_url: str | None = None  # set: one node of several hubs (docs/cluster.md)
    redis_prefix: str = Field("rexec", pattern=r"^[A-Za-z0-9_.-]{1,40}$")  # one per service
    advertise_url: str | None = None  # how other hubs reach this one; default http://HOST:PORT
    public_url: str | None = None  # how agents and browsers reach this hub
    # Web pages on other origins allowed to open terminal sockets (besides this hub's own)
    allowed_origins: list[str] = Field(default_factory=list)
    jwt_secret: SecretStr | None = None  # default: generated once, kept in data_dir
    # Seals passcode (TOTP) secrets in the database; default: derived from jwt_secret.
    secret_key: SecretStr | None = None
    log_level: str = "INFO"
    log_format: Literal["logfmt", "json"] = "logfmt"  # one JSON object a line for collectors

    access_token_ttl: int = Field(900, ge=30, le=86400)
    refresh_token_ttl: int = Field(30 * 86400, ge=60)
    registration_enabled: bool = True
    agent_token_ttl: int = Field(3600, ge=60, le=7 * 86400)
    agent_proof_max_age: int = Field(120, ge=10, le=3600)

    max_body_bytes: int = Field(1 << 20, ge=1024)
    exec_output_limit: int = Field(1 << 20, ge=1024)  # per stream
    exec_default_timeout: float = Field(60, gt=0)
    exec_max_timeout: float = Field(3600, gt=0)
    session_window: int = Field(256 << 10, ge=4096)  # bytes in flight per session
    scrollback_bytes: int = Field(256 << 10, ge=0)  # recent screen kept per session
    client_queue_bytes: int = Field(1 << 20, ge=4096)  # per attached client
    session_grace_seconds: float = Field(600, ge=0)
    recording_enabled: bool = True
    # Where recordings are kept; default data_dir/recordings. Several hubs point this at
    # storage they share, so any hub serves any recording (docs/cluster.md).
    recordings_dir: Path | None = None
    ssh_port: int = Field(2222, ge=0, le=65535)
    ssh_enabled: bool = True  # the SSH gateway (docs/ssh.md)
    ssh_host: str = "127.0.0.1"

    # Supervised AI execution and MCP (docs/approvals.md, docs/mcp.md)
    approval_ttl: float = Field(600, gt=0, le=7 * 86400)  # a held command expires after
    approval_sweep_interval: float = Field(5.0, gt=0, le=3600)
    approval_max_wait: float = Field(120, gt=0, le=3600)  # longest `?wait=` long-poll
    approval_default_mode: Literal["auto", "approve_all", "approve_risky"] = "approve_risky"
    live_capture_bytes: int = Field(1 << 20, ge=1024)  # output kept of a command typed in
    mcp_enabled: bool = True
    mcp_tool_wait: float = Field(60, ge=0, le=3600)  # how long run_command waits for a person

    # Containers (docs/containers.md)
    docker_enabled: bool = True
    docker_host: str | None = None  # default: DOCKER_HOST, else the local socket
    images: dict[str, str] = Field(
        default_factory=lambda: {"busybox": "rexec/busybox:1", "debian": "rexec/debian:12"}
    )
    default_image: str = "busybox"
    container_network: Literal["user", "none", "bridge"] = "user"
    container_read_only: bool = False
    container_user: str | None = None  # default: the image's user
    container_cpus_default: float = Field(1.0, gt=0)
    container_cpus_max: float = Field(2.0, gt=0)
    container_memory_mb_default: int = Field(512, ge=16)
    container_memory_mb_max: int = Field(4096, ge=16)
    container_pids_limit: int = Field(256, ge=16)
    container_ttl_default: int = Field(8 * 3600, ge=1)
    container_ttl_max: int = Field(24 * 3600, ge=60)
    container_idle_timeout: int = Field(1800, ge=1)
    containers_per_user: int | None = Field(None, ge=0)  # hub-wide cap; plans decide first
    warm_pool_size: int = Field(2, ge=0, le=50)
    reaper_interval: float = Field(10.0, gt=0)
    # Labels this hub's containers, so it never touches another hub's; default: an id
    # generated once into data_dir. Hubs that share a database share an instance id.
    instance_id: str | None = Field(None, pattern=r"^[a-z0-9-]{1,40}$")

    # Accounts and billing (docs/accounts.md, docs/billing.md)
    rate_limits_enabled: bool = True
    rate_limits: dict[str, str] = Field(default_factory=dict)  # e.g. {"login_failures": "10/60"}
    trusted_proxies: list[str] = Field(default_factory=list)  # their X-Forwarded-For counts
    passcode_issuer: str = "Rexec"
    plans: dict[str, PlanSpec] = Field(default_factory=default_plans)
    default_plan: str = "free"
    usage_heartbeat_interval: float = Field(5.0, gt=0, le=300)
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None  # default: Stripe's own API
    billing_success_url: str | None = None  # default: public URL + /?billing=success
    billing_cancel_url: str | None = None

    @model_validator(mode="after")
    def _check_plans_and_limits(self) -> HubSettings:
        PlanBook(self.plans, self.default_plan)  # ValueError naming what is wrong
        build_rules(self.rate_limits)
        if self.redis_url and self.jwt_secret is None:
            raise ValueError(
                "hubs that share Redis must share their token secret: set jwt_secret "
                "(REXEC_JWT_SECRET) to the same value on every hub"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("REXEC_CONFIG")
        if config:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config)))
        return tuple(sources)

    @property
    def recordings(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'rexec.db'}"


def load_settings(config: Path | None = None, **overrides: Any) -> HubSettings:
    """Load settings; a config file given here wins over REXEC_CONFIG."""
    if config is not None:
        os.environ["REXEC_CONFIG"] = str(config)
    return HubSettings(**{k: v for k, v in overrides.items() if v is not None})
