"""The hub's Model Context Protocol server (docs/mcp.md)."""
