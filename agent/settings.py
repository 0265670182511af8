"""The agent's configuration: a small TOML file (mode 0600) written by `register`."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_config_path() -> Path:
    if os.geteuid() == 0:
        return Path("/etc/rexec/agent.toml")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rexec" / "agent.toml"


class AgentSettings(BaseSettings):
    """Values from the config file; `REXEC_AGENT_*` variables override them."""

    model_config = SettingsConfigDict(env_prefix="REXEC_AGENT_", extra="ignore")

    hub: str
    # More hubs of the same service, tried in turn when the current one cannot be
    # reached (several hubs without a load balancer: docs/cluster.md).
    hubs: list[str] = Field(default_factory=list)
    agent_id: str
    name: str = ""
    key_file: Path
    shell: str | None = None  # default: the login shell of the user the agent runs as
    metrics_interval: float = Field(15.0, gt=0)
    reconnect_cap: float = Field(3.0, gt=0)
    state_file: Path | None = None
    # Terminals outlive a dropped link or a hub restart for this long, each keeping
    # its last `replay_bytes` of output for the hub to ask for again.
    channel_grace: float = Field(600.0, gt=0)
    replay_bytes: int = Field(1 << 20, ge=4096)

    @property
    def hub_urls(self) -> list[str]:
        return [self.hub, *(h for h in self.hubs if h != self.hub)]

    def ws_url(self, hub: str | None = None) -> str:
        base = (hub or self.hub).rstrip("/")
        scheme = "wss" if base.startswith("https://") else "ws"
        return f"{scheme}://{base.split('://', 1)[1]}/api/agents/{self.agent_id}/ws"


def load(path: Path) -> AgentSettings:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(
            f"rexec-agent: no config at {path}; run `rexec-agent register` first"
        ) from None
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise SystemExit(f"rexec-agent: cannot read {path}: {exc}") from None
    data.setdefault("state_file", str(path.with_suffix(".state.json")))
    return AgentSettings(**data)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_private(path: Path, content: bytes) -> None:
    """Write a file readable by its owner only (config and private key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def save(path: Path, values: dict[str, object]) -> None:
    lines = [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    write_private(path, ("\n".join(lines) + "\n").encode())
