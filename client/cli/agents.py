"""`rexec agents ls|token|rm|exec`."""

from __future__ import annotations

import click

from client.cli.base import (
    complete_agents,
    env_of,
    fail,
    for_each_id,
    show_list,
    with_client,
)
from client.cli.containers import exec_command, json_option, quiet_option
from client.errors import RexecError
from client.output import agents_table, to_json


@click.group()
def agents() -> None:
    """Your servers that run rexec-agent: list, add (a token), remove, run commands."""


@agents.command("ls")
@json_option
@quiet_option
@click.pass_context
def list_agents(ctx: click.Context, as_json: bool, quiet: bool) -> None:
    """List your agents with their status and latest metrics."""
    fetch = lambda client: client.agents.list()  # noqa: E731
    show_list(ctx, fetch, "agents", agents_table, as_json=as_json, quiet=quiet)


@agents.command("token")
@click.option("--name", help="A name for the agent this token will register.")
@click.option("--expires-in", type=int, metavar="SECONDS", help="Validity (default: the hub's).")
@json_option
@click.pass_context
def token(ctx: click.Context, name: str | None, expires_in: int | None, as_json: bool) -> None:
    """Create a one-time registration token and print the install line that uses it.

    \b
    On the server:
      curl -fsSL http://HUB/install.sh | sh -s -- --token rxa_...
    or, with the package installed:
      rexec-agent register --hub http://HUB --token rxa_... && rexec-agent run
    """
    try:
        answer = with_client(
            env_of(ctx),
            lambda client: client.agents.create_token(name=name, expires_in=expires_in),
        )
    except RexecError as err:
        fail(err)
    if as_json:
        click.echo(to_json(dict(answer.raw)))
        return
    click.echo(answer.token)
    expires = answer.expires_at.isoformat() if answer.expires_at else "-"
    click.echo(f"# single use, valid until {expires}; on the server run:", err=True)
    click.echo(answer.install_command, err=True)


@agents.command("rm")
@click.argument("ids", nargs=-1, required=True, shell_complete=complete_agents)
@click.pass_context
def remove(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Remove agents: their connection is closed and their key refused from now on."""
    for_each_id(ctx, ids, lambda client, agent_id: client.agents.delete(agent_id))


exec_command(
    agents,
    "agent",
    complete_agents,
    """Run a command on an agent's server and exit with its exit code (as `containers exec`).""",
)
