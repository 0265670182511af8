"""Asciicast v2 recordings: parse them and play them back at a chosen speed.

A recording is a JSON header line then one `[time, kind, data]` event per line
(`o` output, `i` input, `r` resize, `m` marker). Playback writes the `o` data in order,
waiting between events for the recorded gap divided by `speed`, each gap first capped
at `idle_time_limit` as asciinema does, so a long pause plays as a short one. Parsing
and scheduling do no I/O; `play` takes the writer and the sleep function it uses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from client.errors import ClientError


class InvalidRecording(ClientError):
    default_code = "invalid_recording"


@dataclass(frozen=True, slots=True)
class CastHeader:
    version: int
    width: int
    height: int
    timestamp: int | None = None
    idle_time_limit: float | None = None
    title: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CastEvent:
    time: float
    kind: str
    data: str


@dataclass(frozen=True, slots=True)
class Recording:
    header: CastHeader
    events: tuple[CastEvent, ...]

    @property
    def duration(self) -> float:
        return self.events[-1].time if self.events else 0.0

    def output(self) -> str:
        """Everything the program wrote, in order."""
        return "".join(e.data for e in self.events if e.kind == "o")


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def parse_cast(source: str | bytes | Iterable[str]) -> Recording:
    """Parse an asciicast v2 file (its text, bytes or lines)."""
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    lines: Iterable[str] = source.splitlines() if isinstance(source, str) else source
    header: CastHeader | None = None
    events: list[CastEvent] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise InvalidRecording(f"Line {number} of the recording is not JSON.") from None
        if header is None:
            header = _header(item)
            continue
        if (
            not isinstance(item, list)
            or len(item) < 3
            or _number(item[0]) is None
            or not isinstance(item[1], str)
            or not isinstance(item[2], str)
        ):
            raise InvalidRecording(f"Line {number} of the recording is not an event.")
        events.append(CastEvent(float(item[0]), item[1], item[2]))
    if header is None:
        raise InvalidRecording("The recording is empty.")
    return Recording(header, tuple(events))


def _header(item: Any) -> CastHeader:
    if not isinstance(item, dict) or item.get("version") != 2:
        raise InvalidRecording("Not an asciicast v2 recording (its header has no version 2).")
    width, height = _number(item.get("width")), _number(item.get("height"))
    limit = _number(item.get("idle_time_limit"))
    stamp = _number(item.get("timestamp"))
    title = item.get("title")
    return CastHeader(
        version=2,
        width=int(width or 80),
        height=int(height or 24),
        timestamp=int(stamp) if stamp is not None else None,
        idle_time_limit=limit,
        title=title if isinstance(title, str) else None,
        raw=item,
    )


def schedule(
    events: Iterable[CastEvent], *, speed: float = 1.0, idle_time_limit: float | None = None
) -> Iterator[tuple[float, str]]:
    """(seconds to wait, data to write) for each output event."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    last = 0.0
    pending = 0.0  # time of skipped (non-output) events still to be waited
    for event in events:
        gap = max(0.0, event.time - last)
        last = max(last, event.time)
        if idle_time_limit is not None and idle_time_limit > 0:
            gap = min(gap, idle_time_limit)
        if event.kind != "o":
            pending += gap
            continue
        yield (pending + gap) / speed, event.data
        pending = 0.0


async def play(
    recording: Recording,
    write: Callable[[bytes], None],
    *,
    speed: float = 1.0,
    idle_time_limit: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Write the recording's output with its timing. The header's idle time limit
    applies unless one is given."""
    limit = idle_time_limit if idle_time_limit is not None else recording.header.idle_time_limit
    for delay, data in schedule(recording.events, speed=speed, idle_time_limit=limit):
        if delay > 0:
            await sleep(delay)
        write(data.encode("utf-8", errors="surrogateescape"))
