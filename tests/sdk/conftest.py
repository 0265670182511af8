"""The SDKs in other languages, run by their own test runners against a real hub."""

from __future__ import annotations

from tests.containers.conftest import engine, make_hub

__all__ = ["engine", "make_hub"]
