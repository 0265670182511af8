"""Formatting for people: tables, ages, sizes, durations. Pure functions of their input
(and of the `now` they are given), so listings are tested without a terminal."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from client.models import Agent, Approval, Container, Session


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *[list(r) for r in rows]]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """`12s ago`, `5m ago`, `3h ago`, `2d ago`; `in 5m` for the future; `-` for none."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    seconds = (now - when).total_seconds()
    if abs(seconds) < 1:
        return "now"
    text = duration(abs(seconds), coarse=True)
    return f"{text} ago" if seconds > 0 else f"in {text}"


def duration(seconds: float | None, *, coarse: bool = False) -> str:
    """`42s`, `3m05s`, `2h07m`, `3d04h` (`coarse`: the largest unit only)."""
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size, sub, sub_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if s >= size:
            if coarse:
                return f"{s // size}{unit}"
            return f"{s // size}{unit}{(s % size) // sub_size:02d}{sub}"
    return f"{s}s"


def size(n: float | None) -> str:
    """Bytes as `512 B`, `1.5 KiB`, `20.0 MiB`, `3.2 GiB`."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def percent(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.0f}%"
    return "-"


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


def raw_list(plural: str, items: Sequence[Any]) -> str:
    """`{"<plural>": [...]}`, as the hub answered it (API.md's list shape)."""
    return to_json({plural: [dict(getattr(i, "raw", i)) for i in items]})


def containers_table(items: Sequence[Container], now: datetime | None = None) -> str:
    rows = [
        [c.id, c.name or "-", c.image, c.status, ago(c.created_at, now), ago(c.expires_at, now)]
        for c in items
    ]
    return table(["ID", "NAME", "IMAGE", "STATUS", "CREATED", "EXPIRES"], rows)


def agent_metrics(metrics: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """CPU, memory, disk and load columns from an agent's metrics."""
    load = metrics.get("load1")
    return (
        percent(metrics.get("cpu_percent")),
        percent(metrics.get("memory_percent")),
        percent(metrics.get("disk_percent")),
        f"{load:.2f}" if isinstance(load, int | float) and not isinstance(load, bool) else "-",
    )


def agents_table(items: Sequence[Agent], now: datetime | None = None) -> str:
    rows = [
        [
            a.id,
            a.name or "-",
            a.hostname or "-",
            a.status,
            *agent_metrics(a.metrics),
            ago(a.last_seen, now),
        ]
        for a in items
    ]
    return table(["ID", "NAME", "HOST", "STATUS", "CPU", "MEM", "DISK", "LOAD", "SEEN"], rows)


def session_duration(s: Session, now: datetime | None = None) -> str:
    if s.recording.duration is not None:
        return duration(s.recording.duration)
    if s.started_at is None:
        return "-"
    end = s.ended_at or now or datetime.now(UTC)
    return duration((end - s.started_at).total_seconds())


def sessions_table(items: Sequence[Session], now: datetime | None = None) -> str:
    rows = [
        [
            s.id,
            s.target,
            s.status,
            ago(s.started_at, now),
            session_duration(s, now),
            str(len(s.participants)),
            size(s.recording.bytes) if s.recording.available else "-",
        ]
        for s in items
    ]
    return table(["ID", "TARGET", "STATUS", "STARTED", "DURATION", "PEOPLE", "RECORDING"], rows)


def one_line_cmd(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def approvals_table(items: Sequence[Approval], now: datetime | None = None) -> str:
    rows = [
        [
            a.id,
            a.target,
            a.status,
            ago(a.created_at, now),
            one_line_cmd(a.command),
            one_line_cmd(a.reason or "-", 50),
        ]
        for a in items
    ]
    return table(["ID", "TARGET", "STATUS", "CREATED", "COMMAND", "REASON"], rows)
