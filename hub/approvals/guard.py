"""The one check of supervision: may this credential do this on that target, now?

Supervision belongs to the credential (docs/security.md, "Supervision"). A person's
credential (a web sign-in, or an API token or SSH key made with `kind: "person"`) is
never under a target's policy. An agent's credential (the default for API tokens and
SSH keys) is under it on every path that can run or type something, and every such path
asks `judge` here, through `Supervisor.check` which reads the target's policy:

- `run`: one command (REST exec, MCP `run_command`, SSH `-- CMD`): the policy's
  decision as it stands (hub/approvals/policy.py): run, hold for a person, or refuse.
- `type`: keystrokes with no command to judge (MCP `send_keys`, SFTP). Keystrokes
  cannot be approved one by one and deny patterns cannot be matched against them, so an
  agent types only on a target in `auto` with no deny patterns, and never while paused.
- `attach`: joining a live terminal (WebSocket `?session=`, SSH `ses_...`): always
  allowed to watch; typing as for `type`, else the client is a viewer (`watch`).
- `open`: a new terminal (WebSocket, SSH with a pty): starting a program, so refused
  while paused; with a command, that command must be one the policy runs at once
  (a held one is refused: a terminal cannot wait for a person); then as `attach`.
"""

from __future__ import annotations

from typing import Literal

from common.errors import Forbidden
from hub.approvals.policy import Rules, Verdict, decide

Kind = Literal["person", "agent"]
KINDS: tuple[Kind, ...] = ("person", "agent")
Action = Literal["attach", "open", "type", "run"]
PAUSED = "AI execution on this target is paused by its owner."
READ_ONLY = "ai_read_only"  # the error code of keystrokes an agent may not type


def supervised(kind: str, token_id: str | None, asked: bool) -> bool:
    """Whether an exec follows the target's policy: always for an agent's credential;
    a person's API token may ask for it (`supervised: true`); a sign-in never is."""
    return kind != "person" or (asked and token_id is not None)


def require_person(kind: str, what: str) -> None:
    """Deciding approvals and loosening a policy are a person's, whatever the scopes."""
    if kind != "person":
        raise Forbidden(
            f"An agent's credential cannot {what}; a person must (sign in, or use a "
            "person's token).",
            code="person_required",
        )


def may_create(kind: str, wanted: str) -> None:
    """An agent's credential makes only agents' credentials: no way out of supervision."""
    if wanted == "person":
        require_person(kind, "create a person's credential")


def keys(rules: Rules) -> Verdict:
    """May an agent type keystrokes on a target under these rules?"""
    if rules.paused:
        return Verdict("refuse", PAUSED, "ai_paused")
    if rules.mode != "auto":
        return Verdict(
            "refuse",
            f"Keystrokes cannot be approved one by one: under this target's policy "
            f"({rules.mode}) an agent's credential watches terminals read-only; run commands "
            "with exec or MCP run_command, which a person can approve.",
            READ_ONLY,
        )
    if rules.deny:
        return Verdict(
            "refuse",
            "This target has deny patterns, which keystrokes cannot be checked against: an "
            "agent's credential watches terminals read-only; run commands with exec or MCP "
            "run_command.",
            READ_ONLY,
        )
    return Verdict("run", "the policy is auto")


def judge(kind: str, rules: Rules, action: Action, cmd: str | list[str] | None = None) -> Verdict:
    """The outcome for (credential kind, policy, action); docs/security.md has the table."""
    if kind == "person":
        return Verdict("run", "people are not supervised")
    if action == "run":
        assert cmd is not None
        return decide(rules, cmd)
    if action == "open":
        if rules.paused:
            return Verdict("refuse", PAUSED, "ai_paused")
        if cmd is not None:
            verdict = decide(rules, cmd)
            if verdict.action == "hold":
                return Verdict(
                    "refuse",
                    f"This command needs a person's approval ({verdict.reason}); a terminal "
                    "cannot wait for one: run it with exec or MCP run_command.",
                    "approval_required",
                )
            if verdict.action == "refuse":
                return verdict
    typing = keys(rules)
    if action in ("attach", "open") and typing.action == "refuse":
        return Verdict("watch", typing.reason, typing.code)
    return typing
