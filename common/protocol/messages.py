"""Typed frames of the agent-hub protocol and their byte encoding.

Every frame is one WebSocket binary message: a one-byte type, then for channel
frames a big-endian u32 channel id, then a fixed binary part or a JSON object.
Terminal bytes travel raw (never JSON, never decoded as text). `decode` raises
only `RemoteProtocolError`, whatever the bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from common import jsonlimit
from common.errors import RemoteProtocolError

# 2: input is flow-controlled too: each channel starts with INPUT_WINDOW bytes of input
# credit and the agent returns Credit as its program takes the input (1: input unpaced).
PROTOCOL_VERSIONS: tuple[int, ...] = (1, 2)
INPUT_CREDIT_VERSION = 2
INPUT_WINDOW = 256 << 10  # input bytes the hub may send on a channel before credit
MAX_FRAME = 1 << 20  # one frame's whole size, bytes
MAX_JSON = 64 << 10  # a JSON body's size, bytes
MAX_CHANNEL = 2**32 - 1

ChannelKind = Literal["pty", "exec"]
STDOUT, STDERR = 0, 1

_U32 = struct.Struct("!I")
_DATA = struct.Struct("!IBQ")  # channel, stream, seq
_RESIZE = struct.Struct("!IHH")
_CREDIT = struct.Struct("!II")
_EXIT = struct.Struct("!Ii")
_U64 = struct.Struct("!Q")
_RESUME = struct.Struct("!IQI")


@dataclass(frozen=True, slots=True)
class Hello:
    """Agent to hub, first frame: the versions it speaks and facts about its host."""

    TYPE: ClassVar[int] = 1
    versions: tuple[int, ...]
    agent_version: str
    facts: dict[str, Any] = field(default_factory=dict)
    # Channels the agent still holds from an earlier link: {channel: next_seq}.
    channels: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Welcome:
    """Hub to agent: the chosen version; the link is open."""

    TYPE: ClassVar[int] = 2
    version: int


@dataclass(frozen=True, slots=True)
class Open:
    """Hub to agent: start a program on a new channel."""

    TYPE: ClassVar[int] = 3
    channel: int
    kind: ChannelKind
    command: tuple[str, ...] | None = None  # None: the login shell
    env: dict[str, str] = field(default_factory=dict)
    cols: int = 80
    rows: int = 24
    window: int = 256 << 10
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class Opened:
    """Agent to hub: the program runs."""

    TYPE: ClassVar[int] = 4
    channel: int
    pid: int


@dataclass(frozen=True, slots=True)
class Data:
    """Bytes on a channel. Agent to hub: output, `seq` is the offset of its first
    byte in the channel's output. Hub to agent: input (stream 0), seq 0."""

    TYPE: ClassVar[int] = 5
    channel: int
    payload: bytes
    stream: int = STDOUT
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Resize:
    TYPE: ClassVar[int] = 6
    channel: int
    cols: int
    rows: int


@dataclass(frozen=True, slots=True)
class Credit:
    """Hub to agent: `size` more bytes of output may be sent on the channel. Agent to
    hub (protocol 2): the program took `size` bytes of input; that much more may come."""

    TYPE: ClassVar[int] = 7
    channel: int
    size: int


@dataclass(frozen=True, slots=True)
class Eof:
    """Hub to agent: no more input (closes an exec channel's stdin)."""

    TYPE: ClassVar[int] = 8
    channel: int


@dataclass(frozen=True, slots=True)
class Exit:
    """Agent to hub, a channel's last frame: the program's exit code
    (128 + signal number when a signal ended it, as shells report it)."""

    TYPE: ClassVar[int] = 9
    channel: int
    code: int


@dataclass(frozen=True, slots=True)
class Close:
    """Hub to agent: end the program (SIGHUP, SIGKILL after `grace` seconds)."""

    TYPE: ClassVar[int] = 10
    channel: int
    grace: float = 3.0


@dataclass(frozen=True, slots=True)
class Ping:
    TYPE: ClassVar[int] = 11
    nonce: int


@dataclass(frozen=True, slots=True)
class Pong:
    TYPE: ClassVar[int] = 12
    nonce: int


@dataclass(frozen=True, slots=True)
class Metrics:
    """Agent to hub: host metrics (psutil), sent periodically."""

    TYPE: ClassVar[int] = 13
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Error:
    """Either way. Channel 0 is about the link; otherwise the channel is over
    (for example an Open that failed)."""

    TYPE: ClassVar[int] = 14
    channel: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Resume:
    """Hub to agent, after a reconnect: take up a channel the agent still holds (listed
    in its Hello), sending its output again from offset `seq` with `window` of credit."""

    TYPE: ClassVar[int] = 15
    channel: int
    seq: int
    window: int


Message = (
    Hello
    | Welcome
    | Open
    | Opened
    | Data
    | Resize
    | Credit
    | Eof
    | Exit
    | Close
    | Ping
    | Pong
    | Metrics
    | Error
    | Resume
)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def encode(msg: Message) -> bytes:
    """The frame's bytes. Validation of values against state is the Link's job."""
    t = bytes((msg.TYPE,))
    match msg:
        case Data():
            return t + _DATA.pack(msg.channel, msg.stream, msg.seq) + msg.payload
        case Resize():
            return t + _RESIZE.pack(msg.channel, msg.cols, msg.rows)
        case Credit():
            return t + _CREDIT.pack(msg.channel, msg.size)
        case Exit():
            return t + _EXIT.pack(msg.channel, msg.code)
        case Resume():
            return t + _RESUME.pack(msg.channel, msg.seq, msg.window)
        case Eof():
            return t + _U32.pack(msg.channel)
        case Ping() | Pong():
            return t + _U64.pack(msg.nonce)
        case Hello():
            return t + _json(
                {
                    "versions": list(msg.versions),
                    "agent_version": msg.agent_version,
                    "facts": msg.facts,
                    "channels": {str(k): v for k, v in msg.channels.items()},
                }
            )
        case Welcome():
            return t + _json({"version": msg.version})
        case Metrics():
            return t + _json({"values": msg.values})
        case Open():
            return (
                t
                + _U32.pack(msg.channel)
                + _json(
                    {
                        "kind": msg.kind,
                        "command": None if msg.command is None else list(msg.command),
                        "env": msg.env,
                        "cols": msg.cols,
                        "rows": msg.rows,
                        "window": msg.window,
                        "cwd": msg.cwd,
                    }
                )
            )
        case Opened():
            return t + _U32.pack(msg.channel) + _json({"pid": msg.pid})
        case Close():
            return t + _U32.pack(msg.channel) + _json({"grace": msg.grace})
        case Error():
            return t + _U32.pack(msg.channel) + _json({"code": msg.code, "message": msg.message})
    raise TypeError(f"not a protocol message: {msg!r}")  # pragma: no cover


# ---- decoding: every failure is a RemoteProtocolError ----------------------


def _fail(why: str) -> RemoteProtocolError:
    return RemoteProtocolError(why, code="malformed_frame")


def _load(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_JSON:
        raise _fail("JSON body too large")
    try:
        value = jsonlimit.loads(body)
    except ValueError as exc:  # also bad UTF-8 and nesting deeper than jsonlimit allows
        raise _fail(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _fail("JSON body is not an object")
    return value


def _get(
    obj: dict[str, Any], key: str, kind: type | tuple[type, ...], *, optional: bool = False
) -> Any:
    if key not in obj:
        if optional:
            return None
        raise _fail(f"missing field {key!r}")
    value = obj[key]
    if value is None and optional:
        return None
    # bool is an int in Python; never accept it where a number is expected.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
        raise _fail(f"field {key!r} has the wrong type")
    return value


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _int(obj: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value: int = _get(obj, key, int)
    if not lo <= value <= hi:
        raise _fail(f"field {key!r} out of range")
    return value


def _str_map(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(f"field {key!r} must map strings to strings")
    return dict(value)


def _channel(frame: bytes) -> tuple[int, bytes]:
    if len(frame) < 5:
        raise _fail("frame too short for a channel id")
    (channel,) = _U32.unpack_from(frame, 1)
    if channel == 0:
        raise _fail("channel 0 is reserved")
    return channel, frame[5:]


def _fixed(frame: bytes, layout: struct.Struct) -> tuple[Any, ...]:
    if len(frame) != 1 + layout.size:
        raise _fail(f"frame of type {frame[0]} must be {1 + layout.size} bytes")
    return layout.unpack_from(frame, 1)


def _decode_hello(frame: bytes) -> Hello:
    obj = _load(frame[1:])
    versions = _get(obj, "versions", list)
    if not versions or not all(isinstance(v, int) and not isinstance(v, bool) for v in versions):
        raise _fail("versions must be a non-empty list of integers")
    channels_raw = _get(obj, "channels", dict, optional=True) or {}
    channels: dict[int, int] = {}
    for k, v in channels_raw.items():
        # isascii: str.isdigit() also accepts digits int() refuses ("²"); 10 digits hold a u32.
        if not (
            k.isascii()
            and k.isdigit()
            and len(k) <= 10
            and isinstance(v, int)
            and not isinstance(v, bool)
            and 0 <= v < 2**64  # a Data frame's seq is a u64
        ):
            raise _fail("channels must map channel ids to offsets")
        ch = int(k)
        if not 0 < ch <= MAX_CHANNEL:
            raise _fail("channel id out of range")
        channels[ch] = v
    return Hello(
        versions=tuple(versions),
        agent_version=_get(obj, "agent_version", str),
        facts=_get(obj, "facts", dict, optional=True) or {},
        channels=channels,
    )


def _decode_open(frame: bytes) -> Open:
    channel, body = _channel(frame)
    obj = _load(body)
    kind = _get(obj, "kind", str)
    if kind not in ("pty", "exec"):
        raise _fail("kind must be 'pty' or 'exec'")
    command = _get(obj, "command", list, optional=True)
    if command is not None and (not command or not all(isinstance(a, str) for a in command)):
        raise _fail("command must be a non-empty list of strings")
    return Open(
        channel=channel,
        kind=kind,
        command=None if command is None else tuple(command),
        env=_str_map(obj.get("env", {}), "env"),
        cols=_int(obj, "cols", 1, 65535),
        rows=_int(obj, "rows", 1, 65535),
        window=_int(obj, "window", 0, 2**31 - 1),
        cwd=_get(obj, "cwd", str, optional=True),
    )


def _decode_data(frame: bytes) -> Data:
    if len(frame) < 1 + _DATA.size:
        raise _fail("data frame too short")
    channel, stream, seq = _DATA.unpack_from(frame, 1)
    if channel == 0:
        raise _fail("channel 0 is reserved")
    if stream not in (STDOUT, STDERR):
        raise _fail("unknown stream")
    return Data(channel=channel, payload=frame[1 + _DATA.size :], stream=stream, seq=seq)


def _nonzero(channel: int) -> int:
    if channel == 0:
        raise _fail("channel 0 is reserved")
    return channel


def _decode_resize(frame: bytes) -> Resize:
    channel, cols, rows = _fixed(frame, _RESIZE)
    if cols == 0 or rows == 0:
        raise _fail("a terminal size cannot be zero")
    return Resize(_nonzero(channel), cols, rows)


def _decode_credit(frame: bytes) -> Credit:
    channel, size = _fixed(frame, _CREDIT)
    if not 0 < size < 2**31:
        raise _fail("credit out of range")
    return Credit(_nonzero(channel), size)


def _decode_exit(frame: bytes) -> Exit:
    channel, code = _fixed(frame, _EXIT)
    return Exit(_nonzero(channel), code)


def _decode_resume(frame: bytes) -> Resume:
    channel, seq, window = _fixed(frame, _RESUME)
    if window >= 2**31:
        raise _fail("window out of range")
    return Resume(_nonzero(channel), seq, window)


def _decode_error(frame: bytes) -> Error:
    if len(frame) < 5:
        raise _fail("frame too short for a channel id")
    (channel,) = _U32.unpack_from(frame, 1)
    obj = _load(frame[5:])
    return Error(channel, _get(obj, "code", str), _get(obj, "message", str))


def _decode_close(frame: bytes) -> Close:
    channel, body = _channel(frame)
    grace = _get(_load(body), "grace", (int, float))
    if not 0 <= grace <= 3600:
        raise _fail("grace out of range")
    return Close(channel, float(grace))


def _decode_opened(frame: bytes) -> Opened:
    channel, body = _channel(frame)
    return Opened(channel, _int(_load(body), "pid", 0, 2**31 - 1))


_DECODERS: dict[int, Callable[[bytes], Message]] = {
    Hello.TYPE: _decode_hello,
    Welcome.TYPE: lambda f: Welcome(_int(_load(f[1:]), "version", 1, 65535)),
    Open.TYPE: _decode_open,
    Opened.TYPE: _decode_opened,
    Data.TYPE: _decode_data,
    Resize.TYPE: _decode_resize,
    Credit.TYPE: _decode_credit,
    Eof.TYPE: lambda f: Eof(_nonzero(_fixed(f, _U32)[0])),
    Exit.TYPE: _decode_exit,
    Close.TYPE: _decode_close,
    Ping.TYPE: lambda f: Ping(_fixed(f, _U64)[0]),
    Pong.TYPE: lambda f: Pong(_fixed(f, _U64)[0]),
    Metrics.TYPE: lambda f: Metrics(_get(_load(f[1:]), "values", dict)),
    Error.TYPE: _decode_error,
    Resume.TYPE: _decode_resume,
}


def decode(frame: bytes) -> Message:
    """Parse one frame. Raises RemoteProtocolError for anything malformed."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise _fail("frames are binary")
    frame = bytes(frame)
    if not frame:
        raise _fail("empty frame")
    if len(frame) > MAX_FRAME:
        raise _fail("frame too large")
    decoder = _DECODERS.get(frame[0])
    if decoder is None:
        raise _fail(f"unknown frame type {frame[0]}")
    return decoder(frame)
