"""`rexec connect` under a real pty (pexpect), from a local shell, as a person uses it:
output, window resizes, `~.`, exit codes, errors, and the terminal left as it was."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.client.conftest import Cli
from tests.support import BIN, Api, Hub

PROMPT = "LOCAL-PROMPT> "


class LocalShell:
    """bash on a pty of its own; `rexec` runs in it in the foreground, as typed."""

    def __init__(self, cli: Cli, workdir: Path) -> None:
        inputrc = workdir / "inputrc"
        inputrc.write_text("set enable-bracketed-paste off\n")
        env = cli.env(PS1=PROMPT, PATH=f"{BIN}:/usr/bin:/bin", TERM="xterm", INPUTRC=str(inputrc))
        self.child = pexpect.spawn(
            "bash",
            ["--norc", "--noprofile"],
            env=env,
            cwd=str(workdir),
            dimensions=(24, 80),
            encoding="utf-8",
            codec_errors="replace",
            timeout=30,
        )
        self.prompt()

    def prompt(self) -> str:
        self.child.expect_exact(PROMPT)
        return str(self.child.before)

    def run(self, line: str) -> str:
        """Run a local command line; its output."""
        self.child.sendline(line)
        return self.prompt()

    def expect(self, pattern: str) -> re.Match[str]:
        self.child.expect(pattern)
        match = self.child.match
        assert isinstance(match, re.Match)
        return match

    def send(self, text: str) -> None:
        self.child.send(text)

    def close(self) -> None:
        self.child.close(force=True)


@pytest.fixture
def shell(signed_in: Cli, tmp_path: Path) -> Iterator[LocalShell]:
    sh = LocalShell(signed_in, tmp_path)
    yield sh
    sh.close()


def stty_all(shell: LocalShell) -> str:
    out = shell.run("stty -a")
    assert "speed" in out, out
    return out.split("\n", 1)[1]  # drop the echoed command line


async def test_connect_echo_resize_detach_and_a_sane_terminal(
    shell: LocalShell, container: str, alice: Api
) -> None:
    before = stty_all(shell)
    shell.child.sendline(f'rexec connect {container}; echo "EXIT=$?"')
    shell.send("echo $((6*7))\r")
    shell.expect(r"\r\n42\r\n")

    shell.child.setwinsize(40, 120)  # the kernel sends SIGWINCH to rexec
    shell.send("stty size\r")
    shell.expect(r"\r\n40 120\r\n")
    shell.child.setwinsize(24, 80)
    shell.send("stty size\r")
    shell.expect(r"\r\n24 80\r\n")

    shell.send("\r~.")
    session_id = shell.expect(r"Detached from (ses_\w+)").group(1)
    shell.expect("EXIT=0")
    shell.prompt()
    assert stty_all(shell) == before
    # Detaching leaves the session running on the hub.
    assert (await alice.ok("GET", f"/api/sessions/{session_id}"))["status"] == "live"


async def test_connect_exits_with_the_remote_code(shell: LocalShell, container: str) -> None:
    before = stty_all(shell)
    shell.child.sendline('rexec connect sandbox; echo "EXIT=$?"')  # by name
    shell.send("cd ~.; exit 3\r")  # `~.` inside a line is not an escape
    shell.expect("EXIT=3")
    shell.prompt()
    assert stty_all(shell) == before


async def test_connect_failures_restore_the_terminal(
    shell: LocalShell, container: str, chub: Hub
) -> None:
    before = stty_all(shell)
    out = shell.run('rexec connect ctr_doesnotexist; echo "EXIT=$?"')
    lines = [line for line in out.splitlines()[1:] if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("rexec: ") and "not_found" in lines[0], out
    assert lines[1] == "EXIT=4"
    assert stty_all(shell) == before

    shell.child.sendline(f'rexec connect {container}; echo "EXIT=$?"')
    shell.send("echo $((6*7))\r")
    shell.expect(r"\r\n42\r\n")
    chub.kill()  # the hub dies under an attached terminal
    shell.expect(r"rexec: [^\r\n]+\r\n")
    shell.expect("EXIT=255")
    shell.prompt()
    assert stty_all(shell) == before


async def test_progress_shows_on_a_terminal_only(shell: LocalShell, signed_in: Cli) -> None:
    out = shell.run("rexec containers create --name shown")
    assert "Creating container..." in out  # drawn on stderr, a terminal here
    assert re.search(r"ctr_\w+\r?\n", out), out
    piped = await signed_in("containers", "create", "--name", "hidden")
    assert piped.code == 0 and piped.err == ""  # nothing extra for scripts
