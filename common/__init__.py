"""What the agent and the hub must agree on: protocol, ids, errors, tokens."""

from __future__ import annotations

__version__ = "0.1.0"
