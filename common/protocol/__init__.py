"""The agent-hub wire protocol, sans-I/O: bytes in, typed messages out.

See docs/protocol.md for the frame layout and the state machines.
"""

from __future__ import annotations

from common.protocol.flow import Window
from common.protocol.link import ChannelState, Link, LinkState, Role
from common.protocol.messages import (
    INPUT_CREDIT_VERSION,
    INPUT_WINDOW,
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

__all__ = [
    "INPUT_CREDIT_VERSION",
    "INPUT_WINDOW",
    "PROTOCOL_VERSIONS",
    "ChannelState",
    "Close",
    "Credit",
    "Data",
    "Eof",
    "Error",
    "Exit",
    "Hello",
    "Link",
    "LinkState",
    "Message",
    "Metrics",
    "Open",
    "Opened",
    "Ping",
    "Pong",
    "Resize",
    "Resume",
    "Role",
    "Welcome",
    "Window",
    "decode",
    "encode",
]
