"""`rexec containers create|ls|rm|exec` and the exec machinery `agents` shares."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from client.cli.base import (
    EXIT_OWN_FAILURE,
    Env,
    complete_containers,
    env_of,
    fail,
    for_each_id,
    remote_failure_code,
    report,
    show_list,
    with_client,
)
from client.errors import RexecError
from client.models import Approval, Container, ExecResult
from client.output import containers_table, to_json
from client.progress import Progress
from client.sdk import AsyncClient

EXIT_TIMED_OUT = 124  # as timeout(1)
EXIT_REJECTED = 1


def parse_env(values: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the hub's answer as JSON."
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="Print ids only.")
env_option = click.option(
    "--env", "-e", "env_vars", multiple=True, metavar="NAME=VALUE", help="Environment variable."
)


@click.group()
def containers() -> None:
    """Hub-managed Docker sandboxes: create, list, remove, run commands."""


@containers.command("create")
@click.option("--image", help="A catalog name (busybox, debian) or an image reference.")
@click.option("--name", help="A name to refer to it by (letters, digits, _ . -).")
@click.option("--cpus", type=float, help="CPU limit, e.g. 0.5.")
@click.option("--memory", "memory_mb", type=int, metavar="MB", help="Memory limit in MB.")
@env_option
@click.option("--ttl", type=int, metavar="SECONDS", help="Remove it after this long.")
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    image: str | None,
    name: str | None,
    cpus: float | None,
    memory_mb: int | None,
    env_vars: tuple[str, ...],
    ttl: int | None,
    as_json: bool,
) -> None:
    """Create a container and print its id (it is running when this returns).

    \b
    Example:
      ID=$(rexec containers create --image busybox --name scratch)
    """
    env = env_of(ctx)
    variables = parse_env(env_vars)

    async def call(client: AsyncClient) -> Container:
        async with Progress("Creating container"):
            return await client.containers.create(
                image=image,
                name=name,
                cpus=cpus,
                memory_mb=memory_mb,
                env=variables,
                ttl_seconds=ttl,
            )

    try:
        container = with_client(env, call)
    except RexecError as err:
        fail(err)
    click.echo(to_json(dict(container.raw)) if as_json else container.id)


@containers.command("ls")
@json_option
@quiet_option
@click.pass_context
def list_containers(ctx: click.Context, as_json: bool, quiet: bool) -> None:
    """List your containers, newest first."""
    fetch = lambda client: client.containers.list()  # noqa: E731
    show_list(ctx, fetch, "containers", containers_table, as_json=as_json, quiet=quiet)


@containers.command("rm")
@click.argument("ids", nargs=-1, required=True, shell_complete=complete_containers)
@click.pass_context
def remove(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Remove containers (gone from Docker too). Prints each id removed."""
    for_each_id(ctx, ids, lambda client, cid: client.containers.delete(cid), "Removing")


def run_exec(
    env: Env,
    kind: str,
    target: str,
    command: Sequence[str],
    *,
    env_vars: Sequence[str],
    workdir: str | None,
    timeout: float | None,
    supervised: bool,
    stdin: bool | None,
    as_json: bool,
) -> int:
    """Run one command on a container or agent; the exit code to leave with."""
    variables = parse_env(env_vars)
    if command and command[0] == "--":  # options stop at the target, so `--` arrives here
        command = command[1:]
    if not command:
        raise click.UsageError("Missing the command to run.")
    feed = None
    if stdin or (stdin is None and not sys.stdin.isatty()):
        feed = sys.stdin.buffer.read().decode("utf-8", errors="replace")

    async def call(client: AsyncClient) -> ExecResult | Approval:
        api = client.containers if kind == "container" else client.agents
        result = await api.exec(
            target,
            list(command),
            stdin=feed,
            env=variables,
            workdir=workdir,
            timeout=timeout,
            supervised=supervised,
        )
        if isinstance(result, Approval):
            async with Progress(f"Waiting for a person to approve ({result.id})"):
                result = await client.approvals.wait(result.id)
        return result

    try:
        result = with_client(env, call)
    except RexecError as err:
        report(err)
        return remote_failure_code(err)
    if isinstance(result, Approval):
        if as_json:
            click.echo(to_json(dict(result.raw)))
        if result.result is None:
            click.echo(f"rexec: the command was {result.status} ({result.id})", err=True)
            return EXIT_REJECTED
        result = result.result
    if as_json:
        click.echo(to_json(dict(result.raw)))
    else:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.write(result.stderr)
        sys.stderr.flush()
    if result.timed_out:
        click.echo("rexec: the command timed out", err=True)
        return EXIT_TIMED_OUT
    return result.exit_code if 0 <= result.exit_code <= 255 else EXIT_OWN_FAILURE


def exec_command(
    group: click.Group,
    kind: str,
    complete: Any,
    doc: str,
) -> None:
    """Add `exec` to a target group (`containers`, `agents`): one command, run by
    `run_exec`, with the same options for every kind of target."""

    def run(ctx: click.Context, target: str, command: tuple[str, ...], **options: Any) -> None:
        ctx.exit(run_exec(env_of(ctx), kind, target, command, **options))

    run.__doc__ = doc
    f: Any = click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)(run)
    f = click.argument("target", metavar=kind.upper(), shell_complete=complete)(f)
    for option in reversed(
        [
            env_option,
            click.option("--workdir", "-w", help="Working directory for the command."),
            click.option(
                "--timeout", type=float, metavar="SECONDS", help="Stop it after this long."
            ),
            click.option(
                "--supervised", is_flag=True, help="Submit for approval under the target's policy."
            ),
            click.option(
                "--stdin/--no-stdin",
                default=None,
                help="Send standard input (default: when it is not a terminal).",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
        ]
    ):
        f = option(f)
    f = click.pass_context(f)
    group.command(
        "exec",
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )(f)


exec_command(
    containers,
    "container",
    complete_containers,
    """Run a command in a container and exit with its exit code.

    The command is an argv list, run as it is (use `sh -c '...'` for a shell line);
    its output is printed once it has finished. The target is an id or a name. Exit
    code: the command's; 124 if it timed out; 4 if there is no such target; 255 if
    rexec itself failed.

    \b
    Examples:
      rexec containers exec ctr_123 -- uname -a
      rexec containers exec ctr_123 -- sh -c 'exit 4'; echo $?   # 4
    """,
)
