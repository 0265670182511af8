"""The client's settings and its credentials file.

Settings come from the environment (`REXEC_HUB`, `REXEC_TOKEN`, `REXEC_CONFIG_DIR`) and
are loaded once by each program's entry point. Credentials live in
`$XDG_CONFIG_HOME/rexec/credentials.json` (default `~/.config/rexec/`), one entry per
hub plus the hub last signed in to, written atomically with mode 0600 in a 0700
directory: they are as good as a password for the access they grant.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from client.auth import Credentials
from client.transport import normalize_hub

DEFAULT_HUB = "http://127.0.0.1:8080"
CREDENTIALS_FILE = "credentials.json"


def default_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rexec"


class ClientSettings(BaseSettings):
    """What the CLI and the TUI read from their environment."""

    # Other programs' REXEC_* variables (the hub's, the agent's) are not ours to refuse.
    model_config = SettingsConfigDict(env_prefix="REXEC_", extra="ignore")

    hub: str | None = None  # REXEC_HUB: the hub to talk to
    token: str | None = None  # REXEC_TOKEN: an API token, used instead of stored credentials
    config_dir: Path = Field(default_factory=default_config_dir)  # REXEC_CONFIG_DIR


class CredentialsFile:
    """The credentials of every hub this user signed in to, in one JSON file."""

    def __init__(self, config_dir: Path) -> None:
        self.dir = config_dir
        self.path = config_dir / CREDENTIALS_FILE
        self.lock_path = config_dir / (CREDENTIALS_FILE + ".lock")

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"hubs": {}}
        if not isinstance(data, dict) or not isinstance(data.get("hubs"), dict):
            return {"hubs": {}}
        return data

    def write(self, data: dict[str, Any]) -> None:
        self._ensure_dir()
        tmp = self.path.with_name(f".{CREDENTIALS_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.chmod(tmp, 0o600)  # an umask or an old file never widens it
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _ensure_dir(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def default_hub(self) -> str | None:
        hub = self.read().get("default_hub")
        return hub if isinstance(hub, str) and hub else None

    def set_default_hub(self, hub: str) -> None:
        data = self.read()
        data["default_hub"] = normalize_hub(hub)
        self.write(data)

    def hubs(self) -> list[str]:
        return sorted(self.read()["hubs"])

    def store(self, hub: str) -> FileStore:
        return FileStore(self, normalize_hub(hub))


class FileStore:
    """One hub's entry in the credentials file; a `CredentialStore`."""

    def __init__(self, file: CredentialsFile, hub: str) -> None:
        self.file = file
        self.hub = hub
        self._lock: IO[bytes] | None = None

    def load(self) -> Credentials | None:
        entry = self.file.read()["hubs"].get(self.hub)
        return Credentials.from_json(entry) if isinstance(entry, dict) else None

    def save(self, credentials: Credentials | None) -> None:
        data = self.file.read()
        if credentials is None:
            data["hubs"].pop(self.hub, None)
            if data.get("default_hub") == self.hub:
                data.pop("default_hub", None)
        else:
            data["hubs"][self.hub] = credentials.to_json()
            data.setdefault("default_hub", self.hub)
        self.file.write(data)

    def acquire(self) -> None:
        """Hold the file's lock: one refresh at a time across `rexec` processes."""
        self.file._ensure_dir()
        fd = os.open(self.file.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        lock = os.fdopen(fd, "rb+")
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        self._lock = lock

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
            lock.close()


def resolve_hub(explicit: str | None, settings: ClientSettings, file: CredentialsFile) -> str:
    """--hub, then REXEC_HUB, then the hub last signed in to, then the local default."""
    return normalize_hub(explicit or settings.hub or file.default_hub() or DEFAULT_HUB)
