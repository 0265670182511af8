"""The Rexec hub: API, WebSockets, session broker, storage and the web UI."""

from __future__ import annotations
