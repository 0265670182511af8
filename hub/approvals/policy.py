"""A target's policy for an AI's supervised commands, and the one decision it makes.

Order (docs/approvals.md): a paused target refuses; a deny pattern refuses; `auto`
runs; an allow pattern runs; `approve_all` holds; `approve_risky` holds what the
classifier flags and runs the rest. Patterns are RE2 regular expressions searched
anywhere in the command line (an argv list is quoted into one first). RE2, not Python's
`re`: it matches in linear time, so no user's pattern can stall the hub (catastrophic
backtracking); the price is no backreferences or lookarounds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import re2  # type: ignore[import-untyped]
from pydantic import Field, field_validator

from hub.api.http import Body
from hub.approvals.classifier import classify, command_text

Mode = Literal["auto", "approve_all", "approve_risky"]
MODES: tuple[Mode, ...] = ("auto", "approve_all", "approve_risky")
MAX_PATTERNS = 100
_QUIET = re2.Options()
_QUIET.log_errors = False  # a bad pattern is the caller's 400, not a line on stderr


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> object:
    return re2.compile(pattern, options=_QUIET)


class PolicyBody(Body):
    mode: Mode
    allow: list[str] = Field(default_factory=list, max_length=MAX_PATTERNS)
    deny: list[str] = Field(default_factory=list, max_length=MAX_PATTERNS)

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            if not p or len(p) > 1000:
                raise ValueError("each pattern is 1 to 1000 characters")
            try:
                _compile(p)
            except re2.error as exc:
                why = exc.args[0].decode() if isinstance(exc.args[0], bytes) else exc.args[0]
                raise ValueError(f"{p!r} is not a valid RE2 regular expression: {why}") from None
        return patterns


@dataclass(frozen=True, slots=True)
class Rules:
    mode: Mode
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["run", "hold", "refuse", "watch"]  # watch: output only (hub/approvals/guard.py)
    reason: str
    code: str = ""  # for a refusal: the API error code
    pattern: str | None = None


def _first(patterns: tuple[str, ...], text: str) -> str | None:
    return next((p for p in patterns if _compile(p).search(text)), None)  # type: ignore[attr-defined]


def decide(rules: Rules, cmd: str | list[str]) -> Verdict:
    text = command_text(cmd)
    if rules.paused:
        return Verdict("refuse", "AI execution on this target is paused by its owner.", "ai_paused")
    denied = _first(rules.deny, text)
    if denied is not None:
        return Verdict(
            "refuse", f"The command matches the deny pattern {denied!r}.", "command_denied", denied
        )
    if rules.mode == "auto":
        return Verdict("run", "the policy is auto")
    allowed = _first(rules.allow, text)
    if allowed is not None:
        return Verdict("run", f"allowed by {allowed!r}", pattern=allowed)
    if rules.mode == "approve_all":
        return Verdict("hold", "Every AI command on this target waits for a person (approve_all).")
    risk = classify(cmd)
    if risk is None:
        return Verdict("run", "nothing risky found")
    return Verdict("hold", risk.reason)
