"""One log line per event, as `key=value` pairs (logfmt, the default) or one JSON object
(for log collectors), with the fields of the current log context (a request id, a
session id) added to every line written while that context is in force."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Literal

_RESERVED = set(vars(logging.makeLogRecord({})))
LogFormat = Literal["logfmt", "json"]

# Read-only mappings, replaced (never changed in place) so that a task that copied the
# context when it was created keeps the fields it started with.
_context: ContextVar[Mapping[str, str]] = ContextVar(
    "rexec_log_context", default=MappingProxyType({})
)


def log_context() -> Mapping[str, str]:
    """The fields every log line carries here (request_id, session_id, ...)."""
    return _context.get()


def bind(**fields: str) -> None:
    """Add fields to the log context of the running task (and of tasks it starts)."""
    _context.set(MappingProxyType({**_context.get(), **fields}))


@contextlib.contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Add fields to the log context for the length of a `with` block."""
    token = _context.set(MappingProxyType({**_context.get(), **fields}))
    try:
        yield
    finally:
        _context.reset(token)


def _fields(record: logging.LogRecord) -> list[tuple[str, object]]:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    fields: list[tuple[str, object]] = [
        ("ts", f"{ts}.{int(record.msecs):03d}Z"),
        ("level", record.levelname),
        ("logger", record.name),
        ("msg", record.getMessage()),
    ]
    fields += list(log_context().items())
    fields += [(k, v) for k, v in vars(record).items() if k not in _RESERVED and k != "message"]
    return fields


def _value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=INFO logger=rexec.agent msg="..."` plus the log context and any
    `extra=` fields; a traceback is folded into the same line as `exc="..."`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{k}={_value(v)}" for k, v in fields)


class JsonFormatter(logging.Formatter):
    """The same fields as one JSON object a line; values that JSON cannot hold are
    written as their text."""

    def format(self, record: logging.LogRecord) -> str:
        data = dict(_fields(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def configure(level: int | str = logging.INFO, fmt: LogFormat = "logfmt") -> None:
    """Send every log record to stderr as one line in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
