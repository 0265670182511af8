"""packaging/compose.yaml and its hub.toml: what the hub reads from them exists and
validates (no registry here to pull postgres and redis, so the topology itself runs in
test_image.py with the hub image against the test PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.settings import HubSettings
from tests.support import ROOT

pytestmark = pytest.mark.backend_independent  # scripts/test.sh runs it in one pass

PACKAGING = ROOT / "packaging"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((PACKAGING / "compose.yaml").read_text()))


def test_compose_names_only_real_settings() -> None:
    hub = compose()["services"]["hub"]
    fields = set(HubSettings.model_fields)
    names = [k.removeprefix("REXEC_").lower() for k in hub["environment"] if k.startswith("REXEC_")]
    assert names and all(name in fields or name == "config" for name in names), names
    # The image the build script makes, the data volume, the socket, the config file.
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version and hub["image"] == f"rexec/hub:{version.group(1)}"
    assert "hub-data:/var/lib/rexec-hub" in hub["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in hub["volumes"]
    assert "./hub.toml:/etc/rexec-hub/hub.toml:ro" in hub["volumes"]
    assert hub["environment"]["REXEC_CONFIG"] == "/etc/rexec-hub/hub.toml"
    assert hub["environment"]["REXEC_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert hub["environment"]["REXEC_REDIS_URL"].startswith("redis://redis:")
    for dependency in ("postgres", "redis"):
        assert hub["depends_on"][dependency]["condition"] == "service_healthy"
        assert compose()["services"][dependency]["healthcheck"]["test"]


def test_the_example_config_file_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REXEC_CONFIG", str(PACKAGING / "hub.toml"))
    settings = HubSettings(data_dir=tmp_path)
    assert settings.images["busybox"] == "rexec/busybox:1"
    assert settings.registration_enabled is True
