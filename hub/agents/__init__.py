"""Agents: registration, their live links, and the channels opened on them."""

from __future__ import annotations
