"""The replayed screen keeps its length and its drawing, and loses its terminal queries."""

from __future__ import annotations

import pytest

from hub.sessions.replay import inert

# What vim sends at start and on :q (cursor position, DA2, DECRQM, OSC 10/11 queries).
VIM = (
    b"\x1b[?1049h\x1b[22;0;0t\x1b[?1h\x1b=\x1b[H\x1b[2J\x1b[6n\x1b[>c\x1b[?12$p"
    b"\x1b]10;?\x07\x1b]11;?\x1b\\~\r\n\x1b[1;1H\x1b[?25h\x1b[23;0;0t\x1b[?1049l"
)


@pytest.mark.parametrize(
    "query",
    [
        b"\x1b[c",
        b"\x1b[0c",
        b"\x1b[>c",
        b"\x1b[>0c",
        b"\x1b[=c",
        b"\x1b[5n",
        b"\x1b[6n",
        b"\x1b[?6n",
        b"\x1b[2$p",
        b"\x1b[?2004$p",
        b"\x1b[>q",
        b"\x1b[?u",
        b"\x1b[14t",
        b"\x1b[18t",
        b"\x1b]4;1;?\x07",
        b"\x1b]10;?\x07",
        b"\x1b]11;?\x1b\\",
        b"\x1b]10;?;?\x07",
        b"\x1b]52;c;?\x07",
        b"\x1bP$qm\x1b\\",
        b"\x1bP+q544e\x1b\\",
    ],
)
def test_a_query_becomes_as_many_nul_bytes(query: bytes) -> None:
    assert inert(b"a" + query + b"b") == b"a" + b"\x00" * len(query) + b"b"


@pytest.mark.parametrize(
    "kept",
    [
        b"\x1b[31mred\x1b[0m",
        b"\x1b[?1049h\x1b[H\x1b[2J",
        b"\x1b[8;24;80t",  # a resize request is an action, not a query
        b"\x1b[22;0;0t",  # push the title
        b"\x1b]0;title\x07",
        b"\x1b]11;#000000\x07",  # setting a colour
        b"\x1b[?1c",
        b"\x1b[2 q",  # the cursor style (DECSCUSR)
        b"\x1bP1$r0m\x1b\\",
        "plain text, ünïcode".encode(),
    ],
)
def test_everything_else_stays(kept: bytes) -> None:
    assert inert(kept) == kept


def test_vims_screen_keeps_its_drawing_and_length() -> None:
    out = inert(VIM)
    assert len(out) == len(VIM)
    for query in (b"\x1b[6n", b"\x1b[>c", b"\x1b[?12$p", b"\x1b]10;?", b"\x1b]11;?"):
        assert query not in out
    for kept in (b"\x1b[?1049h", b"\x1b[22;0;0t", b"\x1b[H\x1b[2J", b"~\r\n", b"\x1b[?1049l"):
        assert kept in out
