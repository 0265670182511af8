"""Property-based fuzzing of the agent protocol decoder and link (common/protocol):
whatever bytes a peer sends, `decode` and `Link.receive` raise only the documented
RemoteProtocolError. Settings and the deeper run: tests/fuzzing.py."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from common.errors import RemoteProtocolError
from common.protocol import PROTOCOL_VERSIONS, Hello, Link, Welcome, decode, encode
from tests.fuzzing import fuzz_settings, json_objects

FIELDS = [
    "versions", "agent_version", "facts", "channels", "version", "kind", "command", "env",
    "cols", "rows", "window", "cwd", "pid", "grace", "values", "code", "message",
]  # fmt: skip

# A frame as a hostile peer builds one: a known (or unknown) type, a channel id, then
# JSON aimed at the decoders' fields, or fixed-size binary, or random bytes.
frames = st.builds(
    lambda kind, channel, body, with_channel: (
        bytes([kind]) + (struct.pack("!I", channel) if with_channel else b"") + body
    ),
    st.integers(0, 17),
    st.sampled_from([0, 1, 2, 3, 2**32 - 1]) | st.integers(0, 2**32 - 1),
    json_objects(FIELDS) | st.binary(max_size=24),
    st.booleans(),
)


@fuzz_settings(500)
@given(st.binary(max_size=512) | frames)
def test_decode_raises_only_remote_protocol_errors(frame: bytes) -> None:
    try:
        msg = decode(frame)
    except RemoteProtocolError:
        return
    assert isinstance(encode(msg), bytes)  # what decodes is a message that encodes


@fuzz_settings(100)
@given(st.lists(frames, max_size=8), st.sampled_from([{}, {1: 0}, {3: 10, 7: 0}]))
def test_a_hub_link_raises_only_remote_protocol_errors(
    sequence: list[bytes], held: dict[int, int]
) -> None:
    link = Link("hub")
    link.receive(encode(Hello(PROTOCOL_VERSIONS, "fuzz", {}, held)))
    link.send(Welcome(max(PROTOCOL_VERSIONS)))
    for number in held:
        link.adopt(number, 1 << 16, 0)
    for frame in sequence:
        try:
            link.receive(frame)
        except RemoteProtocolError:
            return  # the hub closes the link here


@fuzz_settings(100)
@given(st.lists(frames, max_size=8))
def test_an_agent_link_raises_only_remote_protocol_errors(sequence: list[bytes]) -> None:
    link = Link("agent")
    link.send(Hello(PROTOCOL_VERSIONS, "fuzz"))
    for frame in sequence:
        try:
            link.receive(frame)
        except RemoteProtocolError:
            return
