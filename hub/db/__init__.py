"""Storage: SQLAlchemy 2 async models, engine and migrations."""

from __future__ import annotations
