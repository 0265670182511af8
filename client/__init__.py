"""The Python SDK, the `rexec` CLI and the `rex` TUI: they speak only API.md.

Empty until the CLI issue lands; it exists so the import rules cover it from the start.
"""

from __future__ import annotations
