"""One log line per event, as `key=value` pairs (logfmt), for journald and grep."""

from __future__ import annotations

import logging
import time

_RESERVED = set(vars(logging.makeLogRecord({})))


def _value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=INFO logger=rexec.agent msg="..."` plus any `extra=` fields;
    a traceback is folded into the same line as `exc="..."`."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: list[tuple[str, object]] = [
            ("ts", f"{ts}.{int(record.msecs):03d}Z"),
            ("level", record.levelname),
            ("logger", record.name),
            ("msg", record.getMessage()),
        ]
        fields += [(k, v) for k, v in vars(record).items() if k not in _RESERVED and k != "message"]
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{k}={_value(v)}" for k, v in fields)


def configure(level: int | str = logging.INFO) -> None:
    """Send every log record to stderr as one logfmt line."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
