"""The session broker: one PTY source, any number of attached clients."""

from __future__ import annotations
