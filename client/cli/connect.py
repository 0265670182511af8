"""`rexec connect` (this terminal on a remote session) and `rexec ssh-config`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

import click

from client.attach import attach_target
from client.cli.base import (
    EXIT_OWN_FAILURE,
    complete_targets,
    env_of,
    fail,
    remote_failure_code,
    report,
    with_client,
)
from client.errors import NotFound, RexecError
from client.models import Agent, Container
from client.sdk import AsyncClient

SSH_PORT = 2222


@click.command()
@click.argument("target", shell_complete=complete_targets)
@click.option("--command", "-c", help="Run this command line instead of the login shell.")
@click.option("--session", metavar="SESSION", help="Rejoin this live session instead.")
@click.option(
    "--escape/--no-escape",
    default=True,
    show_default=True,
    help="Recognise ~. (detach), ~? and ~~ after Enter, as ssh does.",
)
@click.pass_context
def connect(
    ctx: click.Context, target: str, command: str | None, session: str | None, escape: bool
) -> None:
    """Attach this terminal to a container or an agent (by id or name).

    The terminal is in raw mode while attached; window size changes follow. Type
    Enter then `~.` to detach: the session goes on for a while on the hub and can be
    rejoined with --session. Exit code: the remote program's; 0 after a detach; 4 for
    a target that does not exist; 255 if rexec itself failed. The terminal is restored
    in every case.

    \b
    Examples:
      rexec connect ctr_123
      rexec connect web1 --command 'htop'
    """
    env = env_of(ctx)
    try:
        session_id, outcome = with_client(
            env,
            lambda client: attach_target(
                client, target, command=command, session=session, escape=escape
            ),
        )
    except RexecError as err:
        report(err)
        ctx.exit(remote_failure_code(err))
    if outcome.detached:
        click.echo(
            f"\r\nDetached from {session_id}; rejoin with: "
            f"rexec connect {target} --session {session_id}",
            err=True,
        )
        ctx.exit(0)
    if outcome.exit_code is None:
        click.echo("rexec: the session ended without an exit status", err=True)
        ctx.exit(EXIT_OWN_FAILURE)
    ctx.exit(outcome.exit_code if 0 <= outcome.exit_code <= 255 else EXIT_OWN_FAILURE)


def host_alias(name: str, target_id: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in (name or target_id))
    return f"rexec-{safe}"


def ssh_config_text(
    hub: str,
    targets: Sequence[Container | Agent],
    *,
    port: int = SSH_PORT,
    identity: str | None = None,
) -> str:
    """One `Host` block per target for the hub's SSH gateway (`ssh -p 2222 ID@HUB`)."""
    host = urlsplit(hub).hostname or "127.0.0.1"
    blocks = [f"# Rexec SSH gateway of {hub}: ssh rexec-NAME, or ssh -p {port} ID@{host}"]
    for t in targets:
        lines = [
            f"Host {host_alias(t.name, t.id)}",
            f"    HostName {host}",
            f"    Port {port}",
            f"    User {t.id}",
        ]
        if identity:
            lines += [f"    IdentityFile {identity}", "    IdentitiesOnly yes"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


@click.command("ssh-config")
@click.argument("targets", nargs=-1, shell_complete=complete_targets)
@click.option("--port", type=int, default=SSH_PORT, show_default=True, help="The gateway's port.")
@click.option("--identity", "-i", metavar="FILE", help="The private key to use (IdentityFile).")
@click.pass_context
def ssh_config(
    ctx: click.Context, targets: tuple[str, ...], port: int, identity: str | None
) -> None:
    """Print ssh_config Host blocks for the hub's SSH gateway.

    One block per TARGET (id or name), or for all your containers and agents. The
    gateway knows you by the public keys you added to your account.

    \b
    Example:
      rexec ssh-config >> ~/.ssh/config && ssh rexec-scratch
    """
    env = env_of(ctx)

    async def call(client: AsyncClient) -> list[Container | Agent]:
        containers, agents = await asyncio.gather(client.containers.list(), client.agents.list())
        every: list[Container | Agent] = [*containers, *agents]
        if not targets:
            return every
        chosen: list[Container | Agent] = []
        for target in targets:
            target_id = await client.resolve_target(target)
            found = [t for t in every if t.id == target_id]
            if not found:
                raise NotFound(f"No container or agent {target!r}.", code="target_not_found")
            chosen += found
        return chosen

    try:
        chosen = with_client(env, call)
    except RexecError as err:
        fail(err)
    click.echo(ssh_config_text(env.hub, chosen, port=port, identity=identity), nl=False)
