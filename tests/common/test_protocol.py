"""The agent-hub wire protocol, sans-I/O: frames, the Link state machine, flow control.

No sockets: a "fake wire" hands the bytes one Link sends to the other Link's receive.
"""

from __future__ import annotations

import json
import struct
from collections import deque
from dataclasses import replace
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from common.protocol import (
    INPUT_WINDOW,
    PROTOCOL_VERSIONS,
    ChannelState,
    Close,
    Credit,
    Data,
    Eof,
    Error,
    Exit,
    Hello,
    Link,
    LinkState,
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
from common.protocol.flow import MAX_WINDOW
from common.protocol.messages import MAX_FRAME, MAX_JSON

pytestmark = pytest.mark.backend_independent  # scripts/test.sh runs it in one pass

FUZZ = settings(max_examples=300, deadline=None)
U32 = 2**32 - 1

# ---- helpers ------------------------------------------------------------------


def wire(sender: Link, receiver: Link, msg: Message) -> Message:
    """Send `msg` on one link and feed its bytes to the other; return what arrived."""
    return receiver.receive(sender.send(msg))


def connected() -> tuple[Link, Link]:
    agent, hub = Link("agent"), Link("hub")
    wire(agent, hub, Hello(PROTOCOL_VERSIONS, "1.0"))
    wire(hub, agent, Welcome(PROTOCOL_VERSIONS[-1]))
    return agent, hub


def with_channel(window: int = 1024, *, opened: bool = True, channel: int = 1) -> tuple[Link, Link]:
    agent, hub = connected()
    wire(hub, agent, Open(channel, "pty", window=window))
    if opened:
        wire(agent, hub, Opened(channel, 4242))
    return agent, hub


def frame(type_: int, body: Any, channel: int | None = None) -> bytes:
    """A JSON frame by hand; `body` may be raw text to write invalid JSON."""
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    head = bytes((type_,)) + (b"" if channel is None else struct.pack("!I", channel))
    return head + raw


def hello(**changes: Any) -> bytes:
    return frame(1, {"versions": [1], "agent_version": "1.0", **changes})


def open_(**changes: Any) -> bytes:
    body = {"kind": "pty", "command": None, "env": {}, "cols": 80, "rows": 24, "window": 10}
    return frame(3, {**body, **changes}, channel=1)


# ---- round trips --------------------------------------------------------------

SAMPLES: list[Message] = [
    Hello((1, 2), "0.1.0", {"os": "linux", "cpus": 4}, {3: 100, 7: 0}),
    Hello((1,), "x"),
    Welcome(1),
    Open(1, "pty"),
    Open(2**32 - 1, "exec", ("ls", "-l", "é"), {"A": "b"}, 200, 50, 0, "/tmp"),
    Opened(5, 1234),
    Data(1, b"\x00\xff raw \x1b[0m", 1, 2**64 - 1),
    Data(1, b""),
    Resize(1, 65535, 1),
    Credit(1, 2**31 - 1),
    Eof(9),
    Exit(1, -1),
    Exit(1, 137),
    Close(1, 0.5),
    Close(1),
    Ping(0),
    Pong(2**64 - 1),
    Metrics({"cpu": 12.5, "mem": {"used": 1}}),
    Error(0, "version", "no common version"),
    Error(3, "spawn_failed", "no such file"),
    Resume(3, 2**64 - 1, 2**31 - 1),
    Resume(1, 0, 0),
]


def test_samples_cover_every_message_type() -> None:
    assert {type(m) for m in SAMPLES} == set(get_args(Message))


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    assert decode(encode(msg)) == msg
    assert decode(bytearray(encode(msg))) == msg
    assert decode(memoryview(encode(msg))) == msg


def test_close_grace_integer_on_the_wire_decodes_as_float() -> None:
    msg = decode(frame(10, {"grace": 2}, channel=1))
    assert msg == Close(1, 2.0)
    assert isinstance(msg, Close) and isinstance(msg.grace, float)


def test_terminal_bytes_travel_raw() -> None:
    raw = encode(Data(7, b"\xff\xfe", 1, 3))
    assert raw == b"\x05" + struct.pack("!IBQ", 7, 1, 3) + b"\xff\xfe"


# ---- a full exchange over a fake wire ---------------------------------------------


def test_full_exchange() -> None:
    agent, hub = Link("agent"), Link("hub")
    assert agent.state is hub.state is LinkState.IDLE

    assert wire(agent, hub, Hello((1,), "1.0", {"os": "linux"})) == Hello(
        (1,), "1.0", {"os": "linux"}
    )
    assert agent.state is hub.state is LinkState.HELLO
    assert wire(hub, agent, Welcome(1)) == Welcome(1)
    assert agent.state is hub.state is LinkState.OPEN
    assert agent.version == hub.version == 1

    wire(hub, agent, Open(1, "pty", cols=100, rows=30, window=10))
    for link in (agent, hub):
        assert link.channels[1].state is ChannelState.OPENING
        assert link.available(1) == 10
    wire(agent, hub, Opened(1, 4242))
    assert agent.channels[1].state is hub.channels[1].state is ChannelState.OPEN

    # input: hub to agent, seq 0
    assert wire(hub, agent, Data(1, b"ls\r")) == Data(1, b"ls\r")
    # output: seq is the offset of the first byte
    assert wire(agent, hub, Data(1, b"hello ", seq=0)) == Data(1, b"hello ", seq=0)
    assert wire(agent, hub, Data(1, b"err", 1, seq=6)) == Data(1, b"err", 1, seq=6)
    assert agent.next_seq(1) == hub.next_seq(1) == 9
    assert agent.available(1) == hub.available(1) == 1
    wire(hub, agent, Credit(1, 9))
    assert agent.available(1) == hub.available(1) == 10
    wire(agent, hub, Data(1, b"0123456789", seq=9))
    assert agent.available(1) == hub.available(1) == 0

    wire(hub, agent, Resize(1, 120, 40))
    wire(hub, agent, Eof(1))
    wire(hub, agent, Ping(7))
    wire(agent, hub, Pong(7))
    wire(agent, hub, Metrics({"cpu": 1.5}))
    wire(hub, agent, Close(1, 1.0))
    assert agent.is_live(1) and hub.is_live(1)  # Close asks; Exit ends
    assert wire(agent, hub, Exit(1, 0)) == Exit(1, 0)
    assert not agent.is_live(1) and not hub.is_live(1)
    assert agent.available(1) == agent.next_seq(1) == 0

    # an exec channel next to it, ended by an Error from the agent (spawn failed)
    wire(hub, agent, Open(2, "exec", ("false",), {"X": "1"}, cwd="/"))
    wire(agent, hub, Error(2, "spawn_failed", "no such file"))
    assert not agent.is_live(2) and not hub.is_live(2)

    # Error on channel 0 ends the link
    wire(hub, agent, Error(0, "shutdown", "bye"))
    assert agent.state is hub.state is LinkState.CLOSED
    with pytest.raises(LocalProtocolError):
        hub.send(Ping(1))
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(Ping(1)))


def test_error_before_welcome_closes_the_link() -> None:
    agent, hub = Link("agent"), Link("hub")
    wire(agent, hub, Hello((1,), "1.0"))
    wire(hub, agent, Error(0, "unauthorized", "bad token"))
    assert agent.state is hub.state is LinkState.CLOSED


def test_close_clears_channels() -> None:
    agent, _ = with_channel()
    agent.close()
    assert agent.state is LinkState.CLOSED and not agent.channels


def test_resume_takes_up_held_channels_only() -> None:
    agent, hub = Link("agent"), Link("hub")
    wire(agent, hub, Hello((1,), "1.0", channels={3: 100, 5: 7}))
    wire(hub, agent, Welcome(1))
    assert hub.held == agent.held == {3: 100, 5: 7}
    wire(hub, agent, Resume(3, 40, 64))  # the hub asks for output again from offset 40
    wire(agent, hub, Data(3, b"x" * 64, seq=40))
    with pytest.raises(LocalProtocolError):  # the window is spent
        agent.send(Data(3, b"y", seq=104))
    with pytest.raises(LocalProtocolError):  # already taken up
        hub.send(Resume(3, 0, 1))
    with pytest.raises(LocalProtocolError):  # never held
        hub.send(Resume(4, 0, 1))
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Resume(9, 0, 1)))
    # A held channel the hub does not want is closed; new channels start above held ids.
    wire(hub, agent, Close(5, 0.0))
    with pytest.raises(LocalProtocolError):
        hub.send(Open(5, "pty"))
    wire(hub, agent, Open(6, "pty"))


def test_resume_adopts_channels_from_an_earlier_link() -> None:
    agent, hub = Link("agent"), Link("hub")
    hello_msg = wire(agent, hub, Hello((1,), "1.0", channels={3: 100}))
    wire(hub, agent, Welcome(1))
    assert isinstance(hello_msg, Hello)
    for ch, seq in hello_msg.channels.items():
        agent.adopt(ch, 64, seq)
        hub.adopt(ch, 64, seq)
    assert agent.channels[3].state is ChannelState.OPEN
    wire(agent, hub, Data(3, b"resumed", seq=100))
    assert hub.next_seq(3) == 107
    with pytest.raises(LocalProtocolError):  # adopted ids count as used
        hub.send(Open(2, "pty"))


# ---- version negotiation ----------------------------------------------------------


def test_no_common_version() -> None:
    agent, hub = Link("agent"), Link("hub")
    with pytest.raises(LocalProtocolError) as local:
        agent.send(Hello((99,), "9.0"))
    assert local.value.code == "version"
    with pytest.raises(RemoteProtocolError) as remote:
        hub.receive(encode(Hello((98, 99), "9.0")))
    assert remote.value.code == "version"
    assert agent.state is hub.state is LinkState.IDLE
    # the hub says why and the link is over
    wire(hub, agent, Error(0, "version", "no common version"))
    assert agent.state is hub.state is LinkState.CLOSED


def test_hello_with_one_common_version_is_accepted() -> None:
    hub = Link("hub")
    hub.receive(encode(Hello((1, 99), "2.0")))
    assert hub.state is LinkState.HELLO


def test_welcome_with_a_version_we_do_not_speak() -> None:
    agent, hub = Link("agent"), Link("hub")
    wire(agent, hub, Hello((1,), "1.0"))
    with pytest.raises(LocalProtocolError) as local:
        hub.send(Welcome(3))
    assert local.value.code == "version"
    with pytest.raises(RemoteProtocolError) as remote:
        agent.receive(encode(Welcome(3)))
    assert remote.value.code == "version"
    assert agent.version is None


# ---- input flow control (protocol 2) ---------------------------------------------


def test_input_spends_the_input_window_and_the_agents_credit_returns_it() -> None:
    agent, hub = with_channel()
    assert hub.input_credit and agent.input_credit
    assert hub.input_available(1) == agent.input_available(1) == INPUT_WINDOW
    wire(hub, agent, Data(1, b"x" * (INPUT_WINDOW - 10)))
    assert hub.input_available(1) == agent.input_available(1) == 10
    with pytest.raises(LocalProtocolError):
        hub.send(Data(1, b"y" * 11))
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Data(1, b"y" * 11)))
    assert wire(agent, hub, Credit(1, 100)) == Credit(1, 100)
    assert hub.input_available(1) == agent.input_available(1) == 110
    wire(hub, agent, Data(1, b"y" * 110))
    assert hub.input_available(1) == 0
    assert hub.input_available(7) == 0  # not a live channel


def test_input_is_not_paced_on_protocol_1() -> None:
    agent, hub = Link("agent"), Link("hub")
    wire(agent, hub, Hello((1, 2), "1.0"))
    wire(hub, agent, Welcome(1))
    wire(hub, agent, Open(1, "exec"))
    wire(agent, hub, Opened(1, 1))
    assert not hub.input_credit and hub.input_available(1) is None
    wire(hub, agent, Data(1, b"x" * (INPUT_WINDOW + 1)))  # no window to overspend
    with pytest.raises(LocalProtocolError) as local:
        agent.send(Credit(1, 1))
    assert local.value.code == "unexpected_frame"
    with pytest.raises(RemoteProtocolError) as remote:
        hub.receive(encode(Credit(1, 1)))
    assert remote.value.code == "unexpected_frame"


def test_input_credit_needs_an_open_channel() -> None:
    agent, hub = with_channel(opened=False)
    with pytest.raises(LocalProtocolError):
        agent.send(Credit(1, 1))  # before Opened
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(Credit(1, 1)))
    wire(agent, hub, Opened(1, 1))
    wire(agent, hub, Exit(1, 0))
    with pytest.raises(LocalProtocolError):
        agent.send(Credit(1, 1))  # after Exit


def test_input_window_is_full_again_after_resume() -> None:
    agent, hub = with_channel()
    wire(hub, agent, Data(1, b"x" * 1000))
    agent2, hub2 = Link("agent"), Link("hub")
    wire(agent2, hub2, Hello(PROTOCOL_VERSIONS, "1.0", channels={1: 0}))
    wire(hub2, agent2, Welcome(PROTOCOL_VERSIONS[-1]))
    wire(hub2, agent2, Resume(1, 0, 1024))
    assert hub2.input_available(1) == agent2.input_available(1) == INPUT_WINDOW


# ---- flow control -----------------------------------------------------------------


def test_agent_cannot_send_more_than_the_window() -> None:
    agent, hub = with_channel(window=4)
    with pytest.raises(LocalProtocolError):
        agent.send(Data(1, b"12345"))
    assert agent.available(1) == 4 and agent.next_seq(1) == 0  # nothing spent
    wire(agent, hub, Data(1, b"1234"))
    with pytest.raises(LocalProtocolError):
        agent.send(Data(1, b"5", seq=4))
    wire(agent, hub, Data(1, b"", seq=4))  # empty data costs nothing


def test_hub_receiving_more_than_the_window() -> None:
    _, hub = with_channel(window=4)
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(Data(1, b"12345")))
    hub.receive(encode(Data(1, b"1234")))
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(Data(1, b"5", seq=4)))


def test_credit_restores_the_window() -> None:
    agent, hub = with_channel(window=4)
    wire(agent, hub, Data(1, b"1234"))
    assert agent.available(1) == 0
    wire(hub, agent, Credit(1, 3))
    assert agent.available(1) == hub.available(1) == 3
    wire(agent, hub, Data(1, b"567", seq=4))
    assert agent.available(1) == hub.available(1) == 0


def test_zero_window_blocks_until_credit() -> None:
    agent, hub = with_channel(window=0)
    with pytest.raises(LocalProtocolError):
        agent.send(Data(1, b"x"))
    wire(hub, agent, Credit(1, 1))
    wire(agent, hub, Data(1, b"x"))


def test_credit_may_arrive_before_opened() -> None:
    agent, hub = with_channel(window=0, opened=False)
    wire(hub, agent, Credit(1, 5))
    assert agent.available(1) == 5


def test_credit_beyond_the_maximum_window() -> None:
    agent, hub = with_channel(window=MAX_WINDOW)
    with pytest.raises(LocalProtocolError):
        hub.send(Credit(1, 1))
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Credit(1, 1)))
    assert agent.available(1) == hub.available(1) == MAX_WINDOW


def test_unknown_channel_has_no_window() -> None:
    agent, _ = connected()
    assert agent.available(9) == 0 and agent.next_seq(9) == 0


# ---- malformed frames ---------------------------------------------------------------

DEEP = "[" * 20_000 + "]" * 20_000  # within MAX_JSON, beyond the recursion limit

MALFORMED: dict[str, bytes] = {
    # framing
    "empty": b"",
    "unknown type 0": b"\x00\x00\x00\x00\x01",
    "unknown type 15": b"\x0f{}",
    "unknown type 255": b"\xff",
    "oversized data frame": encode(Data(1, b"x" * MAX_FRAME)),
    "oversized JSON body": frame(13, '{"values":{}}' + " " * MAX_JSON),
    # truncated and overlong
    "hello without body": b"\x01",
    "truncated JSON": frame(1, '{"versions":[1],"agent_ver'),
    "data header truncated": encode(Data(1, b""))[:-1],
    "data without channel": b"\x05\x00\x00",
    "open without channel": b"\x03\x00\x00\x01",
    "opened without body": b"\x04\x00\x00\x00\x01",
    "error without channel": b"\x0e\x00",
    "resize truncated": encode(Resize(1, 80, 24))[:-1],
    "resize overlong": encode(Resize(1, 80, 24)) + b"\x00",
    "credit truncated": encode(Credit(1, 5))[:-1],
    "eof truncated": encode(Eof(1))[:-1],
    "eof overlong": encode(Eof(1)) + b"\x00",
    "exit truncated": encode(Exit(1, 0))[:-2],
    "ping truncated": encode(Ping(1))[:-1],
    "pong overlong": encode(Pong(1)) + b"\x00",
    "close without body": b"\x0a\x00\x00\x00\x01",
    # bad JSON
    "invalid JSON": frame(2, "{version: 1}"),
    "not UTF-8": b'\x02{"version":"\xff"}',
    "JSON array": frame(2, [1]),
    "JSON string": frame(2, '"x"'),
    "JSON null": frame(2, "null"),
    "deeply nested JSON": frame(13, '{"values":' + DEEP + "}"),
    "huge JSON number": frame(2, '{"version":' + "9" * 5000 + "}"),
    # wrong field types
    "welcome version string": frame(2, {"version": "1"}),
    "welcome version float": frame(2, {"version": 1.0}),
    "welcome version missing": frame(2, {}),
    "hello versions not a list": hello(versions=1),
    "hello versions empty": hello(versions=[]),
    "hello versions strings": hello(versions=["1"]),
    "hello agent_version number": hello(agent_version=1),
    "hello agent_version missing": frame(1, {"versions": [1]}),
    "hello facts list": hello(facts=[]),
    "hello channels list": hello(channels=[[1, 0]]),
    "hello channel key not a number": hello(channels={"x": 0}),
    "hello channel key superscript": hello(channels={"\u00b2": 0}),
    "hello channel key very long": hello(channels={"1" * 5000: 0}),
    "hello channel key negative": hello(channels={"-1": 0}),
    "hello channel key zero": hello(channels={"0": 0}),
    "hello channel key beyond u32": hello(channels={str(2**32): 0}),
    "hello channel offset negative": hello(channels={"1": -1}),
    "hello channel offset beyond u64": hello(channels={"1": 2**64}),
    "hello channel offset string": hello(channels={"1": "0"}),
    "open kind unknown": open_(kind="tty"),
    "open kind missing": frame(3, {"cols": 80, "rows": 24, "window": 1}, channel=1),
    "open command string": open_(command="ls"),
    "open command empty": open_(command=[]),
    "open command numbers": open_(command=[1]),
    "open env values numbers": open_(env={"A": 1}),
    "open env null": open_(env=None),
    "open cwd number": open_(cwd=1),
    "open cols string": open_(cols="80"),
    "open window float": open_(window=1.5),
    "opened pid string": frame(4, {"pid": "1"}, channel=1),
    "close grace string": frame(10, {"grace": "1"}, channel=1),
    "error code number": frame(14, {"code": 1, "message": ""}, channel=0),
    "error message missing": frame(14, {"code": "x"}, channel=0),
    "metrics values list": frame(13, {"values": []}),
    "metrics values missing": frame(13, {}),
    # bool where an int is expected
    "welcome version true": frame(2, {"version": True}),
    "hello versions true": hello(versions=[True]),
    "hello channel offset true": hello(channels={"1": True}),
    "open cols true": open_(cols=True),
    "open window false": open_(window=False),
    "opened pid true": frame(4, {"pid": True}, channel=1),
    "close grace true": frame(10, {"grace": True}, channel=1),
    # channel 0 is the link, never a channel
    "open on channel 0": open_()[:1] + b"\x00\x00\x00\x00" + open_()[5:],
    "opened on channel 0": frame(4, {"pid": 1}, channel=0),
    "data on channel 0": encode(Data(0, b"x")),
    "resize on channel 0": encode(Resize(0, 80, 24)),
    "credit on channel 0": encode(Credit(0, 1)),
    "eof on channel 0": encode(Eof(0)),
    "exit on channel 0": encode(Exit(0, 0)),
    "close on channel 0": frame(10, {"grace": 1}, channel=0),
    # zero-size resize
    "resize zero cols": encode(Resize(1, 0, 24)),
    "resize zero rows": encode(Resize(1, 80, 0)),
    # out of range
    "welcome version 0": frame(2, {"version": 0}),
    "welcome version 65536": frame(2, {"version": 65536}),
    "open cols 0": open_(cols=0),
    "open rows 65536": open_(rows=65536),
    "open window negative": open_(window=-1),
    "open window 2**31": open_(window=2**31),
    "opened pid negative": frame(4, {"pid": -1}, channel=1),
    "opened pid 2**31": frame(4, {"pid": 2**31}, channel=1),
    "credit zero": encode(Credit(1, 0)),
    "credit 2**31": encode(Credit(1, 2**31)),
    "data stream 2": encode(Data(1, b"x", stream=2)),
    "close grace negative": frame(10, {"grace": -0.1}, channel=1),
    "close grace 3601": frame(10, {"grace": 3601}, channel=1),
    "close grace NaN": frame(10, '{"grace":NaN}', channel=1),
    "close grace Infinity": frame(10, '{"grace":Infinity}', channel=1),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_decode(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        decode(raw)
    assert exc.value.code == "malformed_frame"


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_receive(raw: bytes) -> None:
    for link in with_channel():
        with pytest.raises(RemoteProtocolError):
            link.receive(raw)
    for link in (Link("agent"), Link("hub")):
        with pytest.raises(RemoteProtocolError):
            link.receive(raw)


def test_frames_are_binary() -> None:
    with pytest.raises(RemoteProtocolError):
        decode("\x0b" + "\x00" * 8)  # type: ignore[arg-type]


def test_largest_frame_is_accepted() -> None:
    msg = Data(1, b"x" * (MAX_FRAME - 14))
    assert len(encode(msg)) == MAX_FRAME
    assert decode(encode(msg)) == msg


# ---- values we must not send ----------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        Resize(1, 0, 24),  # the peer would reject it
        Resize(1, 70000, 24),  # does not fit a u16
        Credit(1, 0),
        Credit(1, 2**31),
        Data(1, b"x", stream=2),
        Data(1, b"x" * MAX_FRAME),
        Data(2**32, b"x"),
        Close(1, -1.0),
        Open(2, "pty", window=-1),
        Open(2, "pty", cols=0),
        Open(2, "pty", command=()),
        Eof(0),
    ],
    ids=repr,
)
def test_invalid_values_are_refused_before_any_state_change(msg: Message) -> None:
    agent, hub = with_channel(window=8)
    sender = agent if isinstance(msg, Data) else hub
    with pytest.raises(LocalProtocolError):
        sender.send(msg)
    # the state did not move: the next valid frames still go through
    wire(hub, agent, Open(2, "pty"))
    wire(agent, hub, Data(1, b"ok"))
    assert hub.next_seq(1) == 2


def test_agent_refuses_to_send_an_unsendable_hello() -> None:
    agent = Link("agent")
    for msg in (Hello((), "1.0"), Hello((1,), "1.0", channels={0: 1})):
        with pytest.raises(LocalProtocolError):
            agent.send(msg)
    assert agent.state is LinkState.IDLE


# ---- frames out of state --------------------------------------------------------------


def test_open_before_welcome() -> None:
    agent, hub = Link("agent"), Link("hub")
    with pytest.raises(LocalProtocolError):
        hub.send(Open(1, "pty"))  # idle
    wire(agent, hub, Hello((1,), "1.0"))
    with pytest.raises(LocalProtocolError):
        hub.send(Open(1, "pty"))  # Hello received, Welcome not sent yet
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Open(1, "pty")))  # Welcome not received yet
    with pytest.raises(RemoteProtocolError):
        Link("agent").receive(encode(Open(1, "pty")))  # nothing at all yet
    assert not agent.channels and not hub.channels


@pytest.mark.parametrize(
    "msg", [Ping(1), Pong(1), Metrics({}), Opened(1, 1), Data(1, b"x"), Exit(1, 0)], ids=repr
)
def test_agent_frames_before_welcome(msg: Message) -> None:
    agent, hub = Link("agent"), Link("hub")
    with pytest.raises(LocalProtocolError):
        agent.send(msg)
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(msg))
    wire(agent, hub, Hello((1,), "1.0"))
    with pytest.raises(LocalProtocolError):
        agent.send(msg)
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(msg))


def test_second_hello_and_second_welcome() -> None:
    agent, hub = connected()
    with pytest.raises(LocalProtocolError):
        agent.send(Hello((1,), "1.0"))
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(Hello((1,), "1.0")))
    with pytest.raises(LocalProtocolError):
        hub.send(Welcome(1))
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Welcome(1)))


def test_welcome_before_hello() -> None:
    with pytest.raises(LocalProtocolError):
        Link("hub").send(Welcome(1))
    with pytest.raises(RemoteProtocolError):
        Link("agent").receive(encode(Welcome(1)))


def test_data_before_opened() -> None:
    agent, hub = with_channel(opened=False)
    with pytest.raises(LocalProtocolError):
        agent.send(Data(1, b"x"))
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(Data(1, b"x")))
    assert agent.next_seq(1) == hub.next_seq(1) == 0


def test_opened_twice() -> None:
    agent, hub = with_channel()
    with pytest.raises(LocalProtocolError):
        agent.send(Opened(1, 1))
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(Opened(1, 1)))


def test_exit_before_opened_ends_the_channel() -> None:
    agent, hub = with_channel(opened=False)
    wire(agent, hub, Exit(1, 127))
    assert not agent.is_live(1) and not hub.is_live(1)


@pytest.mark.parametrize("msg", [Data(1, b"x"), Exit(1, 0), Opened(1, 1), Error(1, "e", "m")])
def test_agent_frames_after_exit(msg: Message) -> None:
    agent, hub = with_channel()
    wire(agent, hub, Exit(1, 0))
    with pytest.raises(LocalProtocolError):
        agent.send(msg)
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(msg))


@pytest.mark.parametrize("msg", [Data(2, b"x"), Exit(2, 0), Opened(2, 1), Error(2, "e", "m")])
def test_agent_frames_on_a_channel_never_opened(msg: Message) -> None:
    agent, hub = with_channel()
    with pytest.raises(LocalProtocolError):
        agent.send(msg)
    with pytest.raises(RemoteProtocolError):
        hub.receive(encode(msg))


@pytest.mark.parametrize(
    "msg",
    [Welcome(1), Open(2, "pty"), Resize(1, 80, 24), Eof(1), Close(1)],
    ids=repr,
)
def test_agent_sending_hub_frames(msg: Message) -> None:
    agent, hub = with_channel()
    with pytest.raises(LocalProtocolError) as local:
        agent.send(msg)
    assert local.value.code == "unexpected_frame"
    with pytest.raises(RemoteProtocolError) as remote:
        hub.receive(encode(msg))
    assert remote.value.code == "unexpected_frame"


@pytest.mark.parametrize(
    "msg",
    [Hello((1,), "1.0"), Opened(1, 1), Exit(1, 0), Metrics({})],
    ids=repr,
)
def test_hub_sending_agent_frames(msg: Message) -> None:
    agent, hub = with_channel(opened=False)
    with pytest.raises(LocalProtocolError):
        hub.send(msg)
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(msg))


@pytest.mark.parametrize("seq", [0, 1, 3, 100, 2**64 - 1])  # 0, 1: a replay; the rest: a gap
def test_sequence_gap(seq: int) -> None:
    agent, hub = with_channel()
    wire(agent, hub, Data(1, b"ab", seq=0))
    with pytest.raises(LocalProtocolError) as local:
        agent.send(Data(1, b"c", seq=seq))
    assert local.value.code == "sequence"
    with pytest.raises(RemoteProtocolError) as remote:
        hub.receive(encode(Data(1, b"c", seq=seq)))
    assert remote.value.code == "sequence"
    assert agent.next_seq(1) == hub.next_seq(1) == 2
    wire(agent, hub, Data(1, b"c", seq=2))


@pytest.mark.parametrize("reused", [1, 2])
def test_channel_id_reuse(reused: int) -> None:
    agent, hub = with_channel(channel=2)
    with pytest.raises(LocalProtocolError):
        hub.send(Open(reused, "pty"))
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Open(reused, "pty")))
    wire(agent, hub, Exit(2, 0))
    with pytest.raises(LocalProtocolError):  # not even once it has ended
        hub.send(Open(2, "pty"))
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Open(2, "pty")))
    wire(hub, agent, Open(3, "pty"))


# ---- frames crossing an Exit --------------------------------------------------------

HUB_CHANNEL_FRAMES = [
    Data(1, b"input"),
    Resize(1, 80, 24),
    Credit(1, 10),
    Eof(1),
    Close(1),
    Error(1, "gone", "x"),
]


@pytest.mark.parametrize("msg", HUB_CHANNEL_FRAMES, ids=repr)
def test_hub_frames_for_an_ended_channel_are_ignored(msg: Message) -> None:
    agent, hub = with_channel()
    # the hub sends before the Exit arrives; the agent has ended the channel already
    in_flight = hub.send(msg)
    exit_frame = agent.send(Exit(1, 0))
    assert agent.receive(in_flight) == msg
    hub.receive(exit_frame)
    # and frames the hub sends after it saw the Exit are harmless too
    assert agent.receive(hub.send(msg)) == msg
    assert not agent.is_live(1) and not hub.is_live(1)
    assert agent.state is hub.state is LinkState.OPEN


@pytest.mark.parametrize("msg", HUB_CHANNEL_FRAMES, ids=repr)
def test_hub_frames_for_a_channel_never_opened(msg: Message) -> None:
    agent, hub = with_channel()
    never = replace(msg, channel=2)
    with pytest.raises(LocalProtocolError):
        hub.send(never)
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(never))
    fresh_agent, fresh_hub = connected()  # no channel at all yet
    with pytest.raises(LocalProtocolError):
        fresh_hub.send(msg)
    with pytest.raises(RemoteProtocolError):
        fresh_agent.receive(encode(msg))


# ---- properties -------------------------------------------------------------------

small_channel = st.integers(0, 4)
any_channel = st.one_of(small_channel, st.integers(0, U32))
text = st.text(max_size=8)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)

# Messages with values that encode() can pack, valid or not for decode() and the link.
any_message: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        Hello,
        st.lists(st.integers(0, 3), max_size=3).map(tuple),
        text,
        st.dictionaries(text, json_scalar, max_size=2),
        st.dictionaries(st.integers(0, 5), st.integers(0, 50), max_size=2),
    ),
    st.builds(Welcome, st.integers(0, 3)),
    st.builds(
        Open,
        any_channel,
        st.sampled_from(["pty", "exec"]),
        st.none() | st.lists(text, max_size=2).map(tuple),
        st.dictionaries(text, text, max_size=2),
        st.integers(0, 3),
        st.integers(0, 3),
        st.integers(-1, 64) | st.just(MAX_WINDOW),
        st.none() | text,
    ),
    st.builds(Opened, any_channel, st.integers(-1, 10)),
    st.builds(Data, any_channel, st.binary(max_size=24), st.integers(0, 2), st.integers(0, 40)),
    st.builds(Resize, any_channel, st.integers(0, 3), st.integers(0, 3)),
    st.builds(Credit, any_channel, st.integers(0, 40) | st.integers(2**31 - 2, U32)),
    st.builds(Eof, any_channel),
    st.builds(Exit, any_channel, st.integers(-(2**31), 2**31 - 1)),
    st.builds(Close, any_channel, st.floats(-1, 4000)),
    st.builds(Ping, st.integers(0, 2**64 - 1)),
    st.builds(Pong, st.integers(0, 2**64 - 1)),
    st.builds(Metrics, st.dictionaries(text, json_value, max_size=3)),
    st.builds(Error, small_channel, text, text),
)

# Frames: random bytes, bytes that start with a real type, and encoded messages.
any_frame = st.one_of(
    st.binary(max_size=40),
    st.tuples(st.integers(0, 15), st.binary(max_size=40)).map(lambda t: bytes((t[0],)) + t[1]),
    st.tuples(st.integers(0, 15), json_value).map(lambda t: frame(t[0], t[1])),
    st.tuples(st.integers(0, 15), small_channel, json_value).map(lambda t: frame(t[0], t[2], t[1])),
    any_message.map(encode),
)


@FUZZ
@given(any_frame)
def test_decode_never_raises_anything_else(raw: bytes) -> None:
    try:
        msg = decode(raw)
    except RemoteProtocolError:
        return
    assert isinstance(msg, get_args(Message))


def _stage(name: str) -> tuple[Link, Link]:
    if name == "idle":
        return Link("agent"), Link("hub")
    if name == "hello":
        agent, hub = Link("agent"), Link("hub")
        wire(agent, hub, Hello((1,), "1.0"))
        return agent, hub
    if name == "open":
        return connected()
    if name == "opening":
        return with_channel(window=16, opened=False)
    if name == "closed":
        agent, hub = connected()
        wire(hub, agent, Error(0, "bye", ""))
        return agent, hub
    agent, hub = with_channel(window=16, channel=2)  # "channels": one ended, one open
    wire(agent, hub, Data(2, b"abc"))
    wire(hub, agent, Open(3, "exec", ("true",)))
    wire(agent, hub, Exit(3, 0))
    return agent, hub


STAGES = ["idle", "hello", "open", "opening", "closed", "channels"]


def _check_invariants(link: Link) -> None:
    if link.state is LinkState.CLOSED:
        assert not link.channels
    for ch in link.channels.values():
        assert 0 <= ch.window.available <= MAX_WINDOW
        assert ch.seq >= 0


@FUZZ
@given(
    st.sampled_from(STAGES),
    st.sampled_from(["agent", "hub"]),
    st.lists(st.one_of(any_frame.map(lambda f: ("receive", f)), any_message), max_size=8),
)
def test_link_raises_only_protocol_errors(stage: str, role: str, ops: list[Any]) -> None:
    agent, hub = _stage(stage)
    link = agent if role == "agent" else hub
    for op in ops:
        before = _snapshot(link)
        if isinstance(op, tuple):
            try:
                msg = link.receive(op[1])
            except ProtocolError as exc:
                assert isinstance(exc, RemoteProtocolError)
                assert _snapshot(link) == before  # a rejected frame changes nothing
            else:
                assert isinstance(msg, get_args(Message))
        else:
            try:
                raw = link.send(op)
            except ProtocolError as exc:
                assert isinstance(exc, LocalProtocolError)
                assert _snapshot(link) == before
            else:
                assert decode(raw) == op
        _check_invariants(link)


def _snapshot(link: Link) -> tuple[Any, ...]:
    channels = {n: (c.state, c.window.available, c.seq) for n, c in link.channels.items()}
    return link.state, link.version, channels, link._last_channel


valid_channel = st.integers(1, U32)
valid_message: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        Data, valid_channel, st.binary(max_size=64), st.integers(0, 1), st.integers(0, 2**64 - 1)
    ),
    st.builds(Resize, valid_channel, st.integers(1, 65535), st.integers(1, 65535)),
    st.builds(Credit, valid_channel, st.integers(1, 2**31 - 1)),
    st.builds(Exit, valid_channel, st.integers(-(2**31), 2**31 - 1)),
    st.builds(
        Open,
        valid_channel,
        st.sampled_from(["pty", "exec"]),
        st.none() | st.lists(st.text(), min_size=1, max_size=4).map(tuple),
        st.dictionaries(st.text(), st.text(), max_size=4),
        st.integers(1, 65535),
        st.integers(1, 65535),
        st.integers(0, MAX_WINDOW),
        st.none() | st.text(),
    ),
)


@FUZZ
@given(valid_message)
def test_valid_messages_round_trip(msg: Message) -> None:
    assert decode(encode(msg)) == msg


# Two links joined by two queues, frames in flight both ways: whatever one side may
# send, the other accepts when it arrives, and once the wire is empty both agree.
wire_op = st.one_of(
    st.tuples(st.just("open"), st.integers(0, 32)),
    st.tuples(st.just("opened"), small_channel),
    st.tuples(st.just("data"), small_channel, st.integers(0, 12)),
    st.tuples(st.just("exit"), st.integers(1, 4), st.booleans()),
    st.tuples(st.just("credit"), small_channel, st.integers(1, 16)),
    st.tuples(st.just("input"), small_channel, st.integers(0, 3 * INPUT_WINDOW // 4)),
    st.tuples(st.just("input_credit"), small_channel, st.integers(1, INPUT_WINDOW)),
    # Error on channel 0 ends the link and everything in flight; not modelled here
    st.tuples(
        st.just("hub"), st.integers(1, 4), st.sampled_from(["resize", "eof", "close", "error"])
    ),
    st.tuples(st.just("deliver"), st.sampled_from(["agent", "hub"])),
)


@FUZZ
@given(st.lists(wire_op, max_size=40))
def test_frames_in_flight_are_always_accepted(ops: list[tuple[Any, ...]]) -> None:
    agent, hub = connected()
    to_agent: deque[bytes] = deque()
    to_hub: deque[bytes] = deque()
    next_channel = 1

    def send(link: Link, queue: deque[bytes], msg: Message) -> bool:
        try:
            queue.append(link.send(msg))
        except LocalProtocolError:
            return False
        return True

    for op in ops:
        match op:
            case ("open", window):
                if send(hub, to_agent, Open(next_channel, "pty", window=window)):
                    next_channel += 1
            case ("opened", ch):
                send(agent, to_hub, Opened(ch, 100))
            case ("data", ch, size):
                send(agent, to_hub, Data(ch, b"x" * size, seq=agent.next_seq(ch)))
            case ("exit", ch, failed):
                send(agent, to_hub, Error(ch, "spawn_failed", "") if failed else Exit(ch, 0))
            case ("credit", ch, size):
                send(hub, to_agent, Credit(ch, size))
            case ("input", ch, size):
                send(hub, to_agent, Data(ch, b"i" * size))
            case ("input_credit", ch, size):
                send(agent, to_hub, Credit(ch, size))
            case ("hub", ch, what):
                msg = {
                    "resize": Resize(ch, 80, 24),
                    "eof": Eof(ch),
                    "close": Close(ch),
                    "error": Error(ch, "e", "m"),
                }[what]
                send(hub, to_agent, msg)
            case ("deliver", "agent") if to_agent:
                agent.receive(to_agent.popleft())
            case ("deliver", "hub") if to_hub:
                hub.receive(to_hub.popleft())
    while to_agent:
        agent.receive(to_agent.popleft())
    while to_hub:
        hub.receive(to_hub.popleft())
    assert agent.channels.keys() == hub.channels.keys()
    for ch in agent.channels:
        assert agent.channels[ch].state is hub.channels[ch].state
        assert agent.next_seq(ch) == hub.next_seq(ch)
        assert agent.available(ch) == hub.available(ch)
        assert agent.input_available(ch) == hub.input_available(ch)
