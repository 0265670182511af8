"""The Rexec agent: dials out to the hub and serves PTYs on this host."""

from __future__ import annotations
