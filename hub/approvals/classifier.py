"""Which commands are risky: a table of rules, each with the reason a person is shown.

A rule matches a command word where the shell would run it: at the start of the line,
after `;`, `&`, `|`, `(`, `` ` ``, `$(`, `{` or a newline, or after a wrapper that
runs its arguments (`sudo`, `env`, `xargs`, `nohup`, ...). So `echo rm -rf /` and
`grep -r shutdown docs/` are not flagged while `cd / && sudo rm -rf x` is. The table
is documented in docs/approvals.md; the tests hold a case, and a near miss, per rule.
A command that escapes the classifier (an alias, `eval` of a variable) is what
`approve_all` and deny patterns are for: the classifier is a filter for people's
attention, not a sandbox.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

# Where a command word can start, and the wrappers that run their arguments.
_START = r"(?:^|[;&|(`{\n]|\$\()\s*"
_ARG = r"\s+[^\s;&|]+"  # one more word of the same simple command
_WRAPPER = (
    r"(?:(?:sudo|doas|env|nohup|nice|ionice|time|exec|command|builtin|timeout|stdbuf"
    rf"|xargs|busybox|chroot)\b(?:{_ARG})*?\s+)*"
)
_CMD = _START + _WRAPPER + r"(?:\S*/)?"  # also /usr/bin/rm
_LAST = r"[^\s;&|]*\s*(?:$|[;&|)\n])"  # ...and that was the command's last word
_SYSTEM = r"/(?:etc|boot|usr|bin|sbin|lib|lib32|lib64|sys|proc|var/lib|root)(?:/|\b)"
_DISK = r"/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|dm-|md|loop|disk)"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    reason: str
    pattern: re.Pattern[str]


def _rule(name: str, reason: str, pattern: str) -> Rule:
    return Rule(name, reason, re.compile(pattern, re.IGNORECASE))


def _word(words: str) -> str:
    return _CMD + rf"(?:{words})\b"


RULES: tuple[Rule, ...] = (
    _rule(
        "recursive_delete",
        "Deletes recursively (rm -r, find -delete): whole trees can go at once.",
        _word("rm") + rf"(?:{_ARG})*?\s+(?:-[a-z]*r[a-z]*|--recursive)\b"
        r"|" + _word("find") + r"[^;&|\n]*\s(?:-delete\b|-exec(?:dir)?\s+(?:\S*/)?rm\b)",
    ),
    _rule(
        "disk_tools",
        "Runs a disk or filesystem tool (mkfs, dd, fdisk, wipefs, mount...): "
        "it can destroy or hide data.",
        _word(
            r"mkfs(?:\.\w+)?|mke2fs|mkswap|fdisk|sfdisk|cfdisk|gdisk|sgdisk|parted|wipefs"
            r"|shred|blkdiscard|badblocks|cryptsetup|lvremove|vgremove|pvremove|mdadm"
            r"|umount|swapoff|e2fsck|fsck(?:\.\w+)?|tune2fs|resize2fs"
        )
        + r"|"
        + _word("dd")
        + r"[^;&|\n]*\bof=",
    ),
    _rule(
        "raw_device_write",
        "Writes straight to a disk device.",
        r">\s*" + _DISK,
    ),
    _rule(
        "shutdown",
        "Shuts the machine down or restarts it.",
        _word(r"shutdown|reboot|halt|poweroff|kexec")
        + r"|"
        + _word(r"init|telinit")
        + r"\s+[06]\b"
        + r"|"
        + _word("systemctl")
        + r"\s+(?:-\S+\s+)*(?:poweroff|reboot|halt|kexec|emergency|rescue)\b",
    ),
    _rule(
        "pipe_to_shell",
        "Runs code fetched from the network (curl | sh): what runs is not what you read.",
        _word(r"curl|wget|fetch")
        + r"[^;&\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:\S*/)?(?:ba|da|z|k|c|tc|fi)?sh\b"
        + r"|"
        + r"(?:ba|da|z|k)?sh\b[^;&|\n]*(?:<\s*\(|\$\()\s*(?:curl|wget)\b"
        + r"|"
        + _word(r"curl|wget")
        + r"[^;&\n]*\|\s*(?:sudo\s+)?(?:python3?|perl|ruby|node)\b",
    ),
    _rule(
        "permission_sweep",
        "Changes permissions or ownership recursively, or opens a path to everyone.",
        _word(r"chmod|chown|chgrp|setfacl")
        + rf"(?:{_ARG})*?\s+(?:-[a-z]*R[a-z]*|--recursive)\b"
        + r"|"
        + _word("chmod")
        + r"\s+(?:-\S+\s+)*(?:0?777|a\+rwx|o\+w)\s",
    ),
    _rule(
        "system_write",
        "Writes under a system directory (/etc, /usr, /boot, /bin, /lib...).",
        r"(?<![<>&0-9])>>?\|?\s*"
        + _SYSTEM
        + r"|"
        + _word("tee")
        + r"\s+(?:-\S+\s+)*"
        + _SYSTEM
        + r"|"
        + _word(r"cp|mv|install|ln|rsync|truncate|unlink")
        + rf"(?:{_ARG})*\s+"
        + _SYSTEM
        + _LAST
        + r"|"
        + _word("sed")
        + rf"(?:{_ARG})*?\s+-[a-z]*i[^;&|\n]*\s"
        + _SYSTEM,
    ),
    _rule(
        "package_removal",
        "Removes installed packages.",
        _word(r"apt|apt-get|aptitude")
        + r"(?:\s+-\S+)*\s+(?:remove|purge|autoremove)\b"
        + r"|"
        + _word("dpkg")
        + rf"(?:{_ARG})*?\s+(?:-[a-z]*[rP]\b|--remove|--purge)"
        + r"|"
        + _word(r"yum|dnf|zypper|microdnf")
        + r"(?:\s+-\S+)*\s+(?:remove|erase|rm)\b"
        + r"|"
        + _word("rpm")
        + r"\s+(?:-\S+\s+)*(?:-e\b|--erase)"
        + r"|"
        + _word("pacman")
        + r"\s+-R"
        + r"|"
        + _word("apk")
        + r"\s+(?:-\S+\s+)*del\b"
        + r"|"
        + _word(r"pip3?|snap|flatpak|brew")
        + r"\s+(?:-\S+\s+)*(?:uninstall|remove)\b",
    ),
    _rule(
        "history_tampering",
        "Clears shell history or logs: it hides what was done.",
        _word("history")
        + r"\s+-[a-z]*c"
        + r"|\bunset\s+HISTFILE\b|\bHISTFILE=/dev/null|\bHISTSIZE=0\b|\bset\s+\+o\s+history\b"
        + r"|"
        + _word(r"rm|shred|truncate|unlink|cp|mv|ln")
        + r"[^;&|\n]*(?:\.(?:bash|zsh|sh|ash)_history\b|/var/log/|\bwtmp\b|\bbtmp\b|\blastlog\b)"
        + r"|(?<![<>&0-9])>\s*(?:~/|\$HOME/)?\S*(?:\.(?:bash|zsh|sh|ash)_history\b|/var/log/)"
        + r"|"
        + _word("journalctl")
        + r"[^;&|\n]*--(?:vacuum|rotate)",
    ),
    _rule(
        "process_sweep",
        "Kills processes wholesale (kill -1, killall, pkill).",
        _word("kill") + r"(?:\s+-\S+)*\s+-1\s*(?:$|[;&|)\n])" + r"|" + _word(r"killall5?|pkill"),
    ),
    _rule(
        "fork_bomb",
        "Looks like a fork bomb.",
        r":\s*\(\s*\)\s*\{[^}]*:\s*\|\s*:",
    ),
    _rule(
        "firewall_and_accounts",
        "Changes the firewall or user accounts (iptables -F, userdel, passwd...).",
        _word(r"iptables|ip6tables|nft")
        + rf"(?:{_ARG})*?\s+(?:-F|--flush|flush)\b"
        + r"|"
        + _word(r"ufw")
        + r"\s+disable\b"
        + r"|"
        + _word(r"userdel|deluser|groupdel|delgroup|passwd|chpasswd|usermod|visudo"),
    ),
    _rule(
        "scheduled_jobs",
        "Removes or replaces scheduled jobs (crontab -r).",
        _word("crontab") + rf"(?:{_ARG})*?\s+-[a-z]*r",
    ),
    _rule(
        "discards_work",
        "Discards work in a git repository (push --force, reset --hard, clean -f).",
        _word("git")
        + r"(?:\s+-\S+)*\s+(?:push\s+[^;&|\n]*(?:--force\b|-f\b|\s\+\S)"
        + r"|reset\s+[^;&|\n]*--hard\b|clean\s+[^;&|\n]*-[a-z]*f)",
    ),
)


@dataclass(frozen=True, slots=True)
class Risk:
    rule: str
    reason: str


def command_text(cmd: str | Sequence[str]) -> str:
    """The command as a shell line: argv lists are quoted as a shell would read them."""
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def classify(cmd: str | Sequence[str]) -> Risk | None:
    """The first rule the command matches, or None when nothing looks risky."""
    text = command_text(cmd)
    if not isinstance(cmd, str) and cmd and cmd[0].rsplit("/", 1)[-1] in _SHELLS:
        # ["sh", "-c", "rm -rf /"]: what matters is the script, not its quoting.
        text = " ".join(cmd[2:]) if len(cmd) > 2 and cmd[1] == "-c" else text
    for rule in RULES:
        if rule.pattern.search(text):
            return Risk(rule.name, rule.reason)
    return None


_SHELLS = {"sh", "bash", "ash", "dash", "zsh", "ksh"}
