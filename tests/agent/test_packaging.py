"""The agent installs without the hub: none of its modules may import hub libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.backend_independent  # scripts/test.sh runs it in one pass

HUB_ONLY = ["aiohttp", "sqlalchemy", "alembic", "argon2", "asyncpg", "aiosqlite", "docker"]

PROBE = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {HUB_ONLY!r}:
            raise ImportError('hub-only library ' + name)
        return None
sys.meta_path.insert(0, Block())
import agent.cli, agent.connection, agent.channels, agent.metrics, agent.settings
print('ok')
"""


def test_agent_imports_without_hub_libraries() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_agent_extra_lists_no_hub_dependency() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    agent_deps = " ".join(project["optional-dependencies"]["agent"]).lower()
    for lib in HUB_ONLY:
        assert lib not in agent_deps
