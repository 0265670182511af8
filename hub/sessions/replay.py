"""Replayed output made inert: terminal queries in it are blanked before a client sees it.

A client that attaches (a browser reload, a join, `rexec attach`, the SSH gateway) gets the
recent screen first. A terminal emulator answers the queries in it (device attributes,
cursor position, mode and colour reports: what vi and other full-screen programs send at
start), and those answers go to the program as if typed: junk on the shell's input line, one
copy per join. The program asked long ago and got its answer then, so every query in a
replay is overwritten with NUL bytes, which terminals ignore: the replay keeps its length,
so the offsets clients count stay exact. Live output is untouched (a program waiting for an
answer gets it).
"""

from __future__ import annotations

import re

# CSI: parameters, intermediates, final byte (ECMA-48).
_CSI = re.compile(rb"\x1b\[([0-?]*)([ -/]*)([@-~])")
# OSC up to BEL or ST.
_OSC = re.compile(rb"\x1b\](\d+);([^\x07\x1b]*)(?:\x07|\x1b\\)")
# DCS $q (DECRQSS) and +q (XTGETTCAP) up to ST.
_DCS_QUERY = re.compile(rb"\x1bP[$+]q[^\x1b\x07]*\x1b\\")

# xterm's window reports (CSI Ps t with these Ps); the other Ps act instead of asking.
_WINDOW_REPORTS = {b"11", b"13", b"14", b"15", b"16", b"18", b"19", b"20", b"21"}
# OSC colour and clipboard numbers whose `?` argument asks for a report.
_OSC_QUERYABLE = {4, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 52}


def _csi_asks(params: bytes, intermediates: bytes, final: bytes) -> bool:
    """Whether a CSI sequence is a query a terminal answers."""
    if final == b"p" and intermediates == b"$":
        return True  # DECRQM, ANSI and private modes
    if intermediates:
        return False
    if final == b"c":
        return params.lstrip(b">=") in (b"", b"0")  # primary, secondary, tertiary DA
    if final in (b"n", b"x"):
        return True  # DSR (status, cursor position, ...) and DECREQTPARM
    if final == b"q":
        return params.startswith(b">")  # XTVERSION
    if final == b"u":
        return params == b"?"  # the kitty keyboard protocol's flags
    if final == b"t":
        return params.split(b";", 1)[0] in _WINDOW_REPORTS
    return False


def _blank(match: re.Match[bytes]) -> bytes:
    return b"\x00" * (match.end() - match.start())


def _csi(match: re.Match[bytes]) -> bytes:
    params, intermediates, final = match.groups()
    return _blank(match) if _csi_asks(params, intermediates, final) else match.group(0)


def _osc(match: re.Match[bytes]) -> bytes:
    number, body = match.groups()
    if int(number) in _OSC_QUERYABLE and b"?" in body.split(b";"):
        return _blank(match)
    return match.group(0)


def inert(data: bytes) -> bytes:
    """`data` with every terminal query replaced by as many NUL bytes."""
    if b"\x1b" not in data:
        return data
    data = _CSI.sub(_csi, data)
    data = _OSC.sub(_osc, data)
    return _DCS_QUERY.sub(_blank, data)
