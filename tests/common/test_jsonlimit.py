"""The bounded JSON decoder every untrusted entry point uses (common/jsonlimit.py)."""

from __future__ import annotations

import json

import pytest

from common import jsonlimit
from common.errors import RemoteProtocolError
from common.protocol import decode


def test_nesting_up_to_the_limit_parses_and_one_level_more_is_refused() -> None:
    limit = jsonlimit.MAX_DEPTH
    assert jsonlimit.loads("[" * limit + "]" * limit) is not None
    with pytest.raises(jsonlimit.TooDeep):
        jsonlimit.loads("[" * (limit + 1) + "]" * (limit + 1))
    with pytest.raises(jsonlimit.TooDeep):
        jsonlimit.loads('{"a":' * (limit + 1) + "1" + "}" * (limit + 1))


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[" * 10_000, "t": 'x\\"[[[' * 100})
    assert jsonlimit.loads(text) == json.loads(text)
    assert jsonlimit.loads(text.encode()) == json.loads(text)


def test_a_hundred_thousand_levels_are_refused_quickly_without_recursion() -> None:
    with pytest.raises(ValueError):
        jsonlimit.loads(b"[" * 100_000 + b"]" * 100_000)


def test_bytes_that_are_not_text_are_a_value_error() -> None:
    with pytest.raises(ValueError):
        jsonlimit.loads(b"\xff\xfe\xfa")


def test_a_deep_protocol_body_is_a_malformed_frame() -> None:
    with pytest.raises(RemoteProtocolError):
        decode(bytes([13]) + b'{"values":' + b"[" * 20_000 + b"]" * 20_000 + b"}")
