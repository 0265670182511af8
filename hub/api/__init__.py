"""HTTP and WebSocket handlers: they translate between the wire and the services."""

from __future__ import annotations
