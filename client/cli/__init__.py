"""`rexec`: the command line of Rexec, for people and scripts (docs/cli.md).

Commands are grouped as API.md groups its calls; each module here is one group. The
settings are loaded once, here, and every error leaves as one line and an exit code
(`client.cli.base`), never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import click
from click.shell_completion import get_completion_class

from client.cli.account import login, logout, whoami
from client.cli.agents import agents
from client.cli.approvals import approvals
from client.cli.base import EXIT_ERROR, EXIT_INTERRUPTED, make_env, report
from client.cli.connect import connect, ssh_config
from client.cli.containers import containers
from client.cli.credentials import keys, tokens
from client.cli.sessions import sessions
from client.errors import RexecError

PROG = "rexec"
COMPLETE_VAR = "_REXEC_COMPLETE"


def package_version() -> str:
    try:
        return version("rexec")
    except PackageNotFoundError:
        return "0.0.0"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--hub",
    metavar="URL",
    help="The hub (default: $REXEC_HUB, else the hub last signed in to, else http://127.0.0.1:8080).",
)
@click.version_option(
    package_version(), "--version", "-V", prog_name=PROG, message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context, hub: str | None) -> None:
    """Rexec from your terminal: containers, agents, terminals, recordings.

    \b
    Start with:
      rexec --hub http://HUB:8080 login
      rexec containers create --name scratch
      rexec connect scratch
    """
    try:
        ctx.obj = make_env(hub)
    except ValueError as exc:  # settings that do not validate
        raise click.UsageError(str(exc).splitlines()[0]) from None


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script.

    \b
    bash:  eval "$(rexec completion bash)"      (e.g. in ~/.bashrc)
    zsh:   eval "$(rexec completion zsh)"       (in ~/.zshrc)
    fish:  rexec completion fish > ~/.config/fish/completions/rexec.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, PROG, COMPLETE_VAR).source())


for command in (
    login,
    logout,
    whoami,
    containers,
    agents,
    sessions,
    approvals,
    connect,
    ssh_config,
    tokens,
    keys,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """The `rexec` entry point."""
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name=PROG,
            complete_var=COMPLETE_VAR,
            standalone_mode=False,
        )
    except click.exceptions.Abort:
        click.echo("", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RexecError as err:  # a command that did not handle its own
        report(err)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["cli", "main"]
