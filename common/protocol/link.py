"""The state of one agent-hub link and its channels, as transition tables.

Rules of this module:
- The agent speaks first (Hello); the hub answers Welcome with the chosen version;
  only then may channels open. A link that saw an Error on channel 0 is closed.
- The hub opens channels, with ids that only grow; the agent answers Opened (or an
  Error for that channel) and ends each channel with exactly one Exit.
- Output (agent to hub) spends the channel's window; the hub returns Credit.
- From protocol 2 on, input (hub to agent) spends the channel's input window
  (INPUT_WINDOW at Open and Resume); the agent returns Credit as its program takes it.
- Frames the hub sends on a channel the agent has already ended cross the Exit on the
  wire: the agent ignores them. Anything else out of state is a protocol error:
  `LocalProtocolError` when we would send it, `RemoteProtocolError` when we receive it.

`Link.send` validates and encodes; `Link.receive` decodes and validates. No I/O.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Literal

from common.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from common.protocol.flow import Window
from common.protocol.messages import (
    INPUT_CREDIT_VERSION,
    INPUT_WINDOW,
    MAX_FRAME,
    PROTOCOL_VERSIONS,
    Close,
    Credit,
    Data,
    Eof,
    Error,
    Exit,
    Hello,
    Message,
    Metrics,
    Open,
    Opened,
    Ping,
    Pong,
    Resize,
    Resume,
    Welcome,
    decode,
    encode,
)

Role = Literal["agent", "hub"]


class LinkState(enum.Enum):
    IDLE = "idle"
    HELLO = "hello"  # Hello sent (agent) or received (hub); Welcome pending
    OPEN = "open"
    CLOSED = "closed"


class ChannelState(enum.Enum):
    OPENING = "opening"
    OPEN = "open"


# Which side may send which message.
_SENDERS: dict[type[Message], frozenset[Role]] = {
    Hello: frozenset({"agent"}),
    Welcome: frozenset({"hub"}),
    Open: frozenset({"hub"}),
    Opened: frozenset({"agent"}),
    Data: frozenset({"agent", "hub"}),
    Resize: frozenset({"hub"}),
    Credit: frozenset({"hub", "agent"}),  # the agent's: input credit, protocol 2
    Eof: frozenset({"hub"}),
    Exit: frozenset({"agent"}),
    Close: frozenset({"hub"}),
    Ping: frozenset({"agent", "hub"}),
    Pong: frozenset({"agent", "hub"}),
    Metrics: frozenset({"agent"}),
    Error: frozenset({"agent", "hub"}),
    Resume: frozenset({"hub"}),
}

# Link transitions: (state, message type) -> next state. Messages not listed for a
# state are out of state. Channel-level checks come after this table allows them.
_LINK: dict[tuple[LinkState, type[Message]], LinkState] = {
    (LinkState.IDLE, Hello): LinkState.HELLO,
    (LinkState.HELLO, Welcome): LinkState.OPEN,
    (LinkState.IDLE, Error): LinkState.CLOSED,
    (LinkState.HELLO, Error): LinkState.CLOSED,
    **{
        (LinkState.OPEN, t): LinkState.OPEN
        for t in (
            Open,
            Opened,
            Data,
            Resize,
            Credit,
            Eof,
            Exit,
            Close,
            Ping,
            Pong,
            Metrics,
            Error,
            Resume,
        )
    },
}

# Channel transitions for frames the agent sends: (state, type) -> next (None: ended).
_AGENT_CHANNEL: dict[tuple[ChannelState, type[Message]], ChannelState | None] = {
    (ChannelState.OPENING, Opened): ChannelState.OPEN,
    (ChannelState.OPENING, Exit): None,
    (ChannelState.OPENING, Error): None,
    (ChannelState.OPEN, Data): ChannelState.OPEN,
    (ChannelState.OPEN, Credit): ChannelState.OPEN,
    (ChannelState.OPEN, Exit): None,
    (ChannelState.OPEN, Error): None,
}


@dataclass(slots=True)
class _Channel:
    state: ChannelState
    window: Window  # output, agent to hub
    seq: int = 0  # offset of the next output byte
    input: Window | None = None  # input, hub to agent (protocol 2)


class Link:
    """One end of an agent-hub link."""

    def __init__(self, role: Role) -> None:
        self.role: Role = role
        self.state = LinkState.IDLE
        self.version: int | None = None
        self.channels: dict[int, _Channel] = {}
        self._last_channel = 0
        # Channels the agent kept from an earlier link (its Hello), not yet resumed.
        self.held: dict[int, int] = {}

    # -- public ---------------------------------------------------------------

    def send(self, msg: Message) -> bytes:
        """Validate `msg` against our role and state, apply it, and encode it."""
        # Values first, before any state changes: never send what the peer's decode
        # rejects as malformed (or what cannot be packed at all).
        try:
            frame = encode(msg)
            if isinstance(msg, Data):  # the hot path: check the few values by hand
                if len(frame) > MAX_FRAME or msg.channel == 0 or msg.stream not in (0, 1):
                    raise ValueError("data frame out of range")
            else:
                decode(frame)
        except (RemoteProtocolError, struct.error, TypeError, ValueError) as exc:
            raise LocalProtocolError(
                f"invalid {type(msg).__name__}: {exc}", code="malformed_frame"
            ) from None
        self._apply(msg, self.role, LocalProtocolError)
        return frame

    def receive(self, frame: bytes) -> Message:
        """Decode and validate a frame from the peer, and apply it."""
        msg = decode(frame)
        peer: Role = "hub" if self.role == "agent" else "agent"
        self._apply(msg, peer, RemoteProtocolError)
        return msg

    def available(self, channel: int) -> int:
        """Bytes of output the agent may send on `channel` now (0 if unknown)."""
        ch = self.channels.get(channel)
        return ch.window.available if ch else 0

    @property
    def input_credit(self) -> bool:
        """Whether input is flow-controlled on this link (protocol 2 and later)."""
        return self.version is not None and self.version >= INPUT_CREDIT_VERSION

    def input_available(self, channel: int) -> int | None:
        """Bytes of input the hub may send on `channel` now; None: not limited (an
        older protocol), 0 for a channel that is not live."""
        ch = self.channels.get(channel)
        if ch is None:
            return 0
        return ch.input.available if ch.input is not None else None

    def next_seq(self, channel: int) -> int:
        ch = self.channels.get(channel)
        return ch.seq if ch else 0

    def is_live(self, channel: int) -> bool:
        return channel in self.channels

    def close(self) -> None:
        self.state = LinkState.CLOSED
        self.channels.clear()

    def adopt(self, channel: int, window: int, seq: int) -> None:
        """Carry a channel over from an earlier link (resume after a reconnect)."""
        self.channels[channel] = _Channel(
            ChannelState.OPEN, Window(window), seq, self._input_window()
        )
        self._last_channel = max(self._last_channel, channel)

    def _input_window(self) -> Window | None:
        return Window(INPUT_WINDOW) if self.input_credit else None

    # -- rules ----------------------------------------------------------------

    def _apply(self, msg: Message, sender: Role, error: type[ProtocolError]) -> None:
        kind = type(msg)
        if sender not in _SENDERS[kind]:
            raise error(f"{sender} may not send {kind.__name__}", code="unexpected_frame")
        nxt = _LINK.get((self.state, kind))
        if nxt is None:
            raise error(
                f"{kind.__name__} not allowed while the link is {self.state.value}",
                code="unexpected_frame",
            )
        if isinstance(msg, Hello):
            self._check_hello(msg, error)
            self.held = dict(msg.channels)
            self._last_channel = max(msg.channels, default=0)
        elif isinstance(msg, Welcome):
            if msg.version not in PROTOCOL_VERSIONS:
                raise error(f"unsupported protocol version {msg.version}", code="version")
            self.version = msg.version
        elif isinstance(msg, Error) and msg.channel == 0:
            nxt = LinkState.CLOSED
        elif hasattr(msg, "channel"):
            self._apply_channel(msg, sender, error)
        self.state = nxt
        if nxt is LinkState.CLOSED:
            self.channels.clear()

    @staticmethod
    def _check_hello(msg: Hello, error: type[ProtocolError]) -> None:
        if not set(msg.versions) & set(PROTOCOL_VERSIONS):
            raise error(
                f"no common protocol version (peer {list(msg.versions)}, "
                f"ours {list(PROTOCOL_VERSIONS)})",
                code="version",
            )

    def _apply_channel(self, msg: Message, sender: Role, error: type[ProtocolError]) -> None:
        channel: int = msg.channel  # type: ignore[union-attr]
        ch = self.channels.get(channel)
        if isinstance(msg, Resume):
            if channel not in self.held:
                raise error(f"channel {channel} is not held by the agent", code="unexpected_frame")
            del self.held[channel]
            self.channels[channel] = _Channel(
                ChannelState.OPEN, Window(msg.window), msg.seq, self._input_window()
            )
            return
        if isinstance(msg, Open):
            if channel <= self._last_channel:
                raise error(f"channel {channel} reused", code="unexpected_frame")
            self._last_channel = channel
            self.channels[channel] = _Channel(
                ChannelState.OPENING, Window(msg.window), input=self._input_window()
            )
            return
        if sender == "hub":
            if ch is None and channel > self._last_channel:
                raise error(f"channel {channel} was never opened", code="unexpected_frame")
            if ch is not None and isinstance(msg, Credit):
                ch.window.grant(msg.size, error)
            elif ch is not None and isinstance(msg, Data) and ch.input is not None:
                ch.input.consume(len(msg.payload), error)
            return  # hub frames for an ended channel crossed its Exit: ignored
        if ch is None:
            raise error(f"channel {channel} is not open", code="unexpected_frame")
        nxt = _AGENT_CHANNEL.get((ch.state, type(msg)))
        if (ch.state, type(msg)) not in _AGENT_CHANNEL:
            raise error(
                f"{type(msg).__name__} not allowed on a channel that is {ch.state.value}",
                code="unexpected_frame",
            )
        if isinstance(msg, Credit):
            if ch.input is None:
                raise error("input credit needs protocol 2", code="unexpected_frame")
            ch.input.grant(msg.size, error)
        if isinstance(msg, Data):
            if msg.seq != ch.seq:
                raise error(f"data at {msg.seq}, expected {ch.seq}", code="sequence")
            ch.window.consume(len(msg.payload), error)
            ch.seq += len(msg.payload)
        if nxt is None:
            del self.channels[channel]
        else:
            ch.state = nxt
