"""Settings: defaults, a TOML config file, and REXEC_* variables over it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.settings import HubSettings, load_settings

pytestmark = pytest.mark.backend_independent  # scripts/test.sh runs it in one pass


def test_config_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    config = tmp_path / "hub.toml"
    config.write_text('port = 9000\nlog_level = "DEBUG"\nsession_window = 131072\n')
    monkeypatch.setenv("REXEC_CONFIG", str(config))
    monkeypatch.setenv("REXEC_LOG_LEVEL", "WARNING")
    settings = load_settings(None, data_dir=tmp_path)
    assert settings.port == 9000  # from the file
    assert settings.log_level == "WARNING"  # the environment wins over the file
    assert settings.session_window == 131072
    assert load_settings(None, port=0, data_dir=tmp_path).port == 0  # flags win over both
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'rexec.db'}"


def test_invalid_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REXEC_CONFIG", raising=False)
    monkeypatch.setenv("REXEC_PORT", "70000")
    with pytest.raises(ValidationError):
        HubSettings(data_dir=tmp_path)
    monkeypatch.delenv("REXEC_PORT")
    config = tmp_path / "bad.toml"
    config.write_text("no_such_setting = 1\n")
    monkeypatch.setenv("REXEC_CONFIG", str(config))
    with pytest.raises(ValidationError):
        HubSettings(data_dir=tmp_path)
