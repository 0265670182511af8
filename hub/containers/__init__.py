"""Hub-managed Docker containers: the engine adapter, the terminal source, the service."""

from __future__ import annotations
