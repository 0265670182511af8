"""The Python SDK, the `rexec` CLI and the `rex` TUI: they speak only API.md.

    client.sdk.AsyncClient   the asynchronous SDK (typed results, typed errors)
    client.sync.Client       its synchronous facade
    client.terminal          the terminal attach API (output, send, resize, exit code)
    client.cli               `rexec` (docs/cli.md)
    client.tui               `rex`

Everything here imports only `common` and its own libraries.
"""

from __future__ import annotations
