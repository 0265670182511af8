"""The locks in requirements/ pin, with hashes, every dependency pyproject.toml declares,
at a version pyproject.toml allows: a dependency added without `scripts/lock.sh` fails."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import ROOT

pytestmark = pytest.mark.backend_independent

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: str) -> dict[str, str]:
    """Name -> version of every package in a lock; each must carry hashes."""
    text = (ROOT / "requirements" / f"{lock}.txt").read_text()
    found: dict[str, str] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.match(entry)
        if match is None:
            continue
        assert "--hash=sha256:" in entry, f"{lock}.txt: {match[1]} has no hash"
        found[canonicalize_name(match[1])] = match[2]
    return found


def declared(extra: str) -> list[Requirement]:
    """The requirements of an extra, with rexec[...] self-references expanded."""
    out: list[Requirement] = []
    for line in EXTRAS[extra]:
        req = Requirement(line)
        if canonicalize_name(req.name) == "rexec":
            for inner in sorted(req.extras):
                out += declared(inner)
        else:
            out.append(req)
    return out


@pytest.mark.parametrize("extra", ["agent", "hub", "cli", "dev"])
def test_lock_pins_every_declared_dependency_within_its_range(extra: str) -> None:
    locked = pins(extra)
    for req in declared(extra):
        if req.marker is not None and not req.marker.evaluate({"sys_platform": "linux"}):
            continue
        name = canonicalize_name(req.name)
        assert name in locked, (
            f"{req.name} is declared for [{extra}] but not locked: run scripts/lock.sh"
        )
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"requirements/{extra}.txt pins {req.name}=={locked[name]}, outside {req.specifier}:"
            " run scripts/lock.sh"
        )


def test_the_build_backend_and_uv_are_locked_too() -> None:
    assert "setuptools" in pins("build")
    assert "uv" in pins("uv")


def test_the_hub_serves_the_agent_lock_it_was_built_with() -> None:
    served = ROOT / "hub" / "web" / "agent-requirements.txt"
    assert served.read_text() == (ROOT / "requirements" / "agent.txt").read_text()
