"""The one JSON decoder for untrusted input: nesting depth is bounded before parsing.

Python's `json` recurses once per nesting level, so `'[' * 100000` raises RecursionError
deep in the parser (and anything that walks the result later, pydantic or `json.dumps`,
can hit the limit too). Every entry point that reads JSON from outside (request bodies,
terminal WebSocket text frames, agent protocol frames) goes through `loads`, which counts
the brackets first and refuses a document nested deeper than `MAX_DEPTH` with a
`ValueError`, the error each caller already turns into its documented answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # deeper than any document Rexec reads or writes needs

# A JSON string (escapes included): brackets inside strings do not nest.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


class TooDeep(ValueError):
    """The document nests deeper than allowed."""


def depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit` (stops at the first
    level past it, so a hostile document costs no more than a benign one)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads(raw: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` with bounded nesting. Raises ValueError (TooDeep, JSONDecodeError,
    UnicodeDecodeError) for anything it does not accept, never RecursionError."""
    if isinstance(raw, str):
        text = raw
    else:  # as json.loads reads bytes: UTF-8, -16 or -32 by their first bytes
        data = bytes(raw)
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    if depth_exceeds(text, max_depth):
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise TooDeep("JSON nested too deeply") from None
