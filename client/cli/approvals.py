"""`rexec approvals ls|approve|reject|pause|resume|policy`: people deciding what an AI
may run (docs/approvals.md)."""

from __future__ import annotations

import click

from client.cli.base import (
    complete_targets,
    env_of,
    fail,
    for_each_id,
    show_list,
    with_client,
)
from client.cli.containers import json_option, quiet_option
from client.errors import RexecError
from client.models import Approval, Policy, PolicyMode
from client.output import approvals_table, to_json
from client.sdk import AsyncClient

STATUSES = ("pending", "approved", "completed", "rejected", "expired", "all")
MODES: tuple[PolicyMode, ...] = ("auto", "approve_all", "approve_risky")


@click.group()
def approvals() -> None:
    """AI commands held for a person: list, approve, reject; pause AI on a target."""


@approvals.command("ls")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    default="pending",
    show_default=True,
    help="Which approvals to list.",
)
@json_option
@quiet_option
@click.pass_context
def list_approvals(ctx: click.Context, status: str, as_json: bool, quiet: bool) -> None:
    """List approvals, newest first (by default the ones waiting for you)."""
    wanted = None if status == "all" else status
    fetch = lambda client: client.approvals.list(wanted)  # noqa: E731
    show_list(ctx, fetch, "approvals", approvals_table, as_json=as_json, quiet=quiet)


def _show(approval: Approval, as_json: bool) -> None:
    if as_json:
        click.echo(to_json(dict(approval.raw)))
    else:
        click.echo(f"{approval.id} {approval.status}: {approval.command}")


@approvals.command("approve")
@click.argument("approval_id", metavar="ID")
@click.option("--cmd", "edited", metavar="COMMAND", help="Run this (edited) command instead.")
@json_option
@click.pass_context
def approve(ctx: click.Context, approval_id: str, edited: str | None, as_json: bool) -> None:
    """Approve a held command; it runs at once (in the target's live terminal if one is
    open, where everyone attached sees it)."""
    try:
        answer = with_client(
            env_of(ctx), lambda client: client.approvals.approve(approval_id, cmd=edited)
        )
    except RexecError as err:
        fail(err)
    _show(answer, as_json)


@approvals.command("reject")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--reason", help="Told to the AI that asked.")
@click.pass_context
def reject(ctx: click.Context, ids: tuple[str, ...], reason: str | None) -> None:
    """Reject held commands; they never run. Prints each id rejected."""

    async def one(client: AsyncClient, approval_id: str) -> None:
        await client.approvals.reject(approval_id, reason=reason)

    for_each_id(ctx, ids, one)


async def _switch(client: AsyncClient, target: str, paused: bool) -> None:
    target_id = await client.resolve_target(target)
    api = client.agents if target_id.startswith("agt_") else client.containers
    await (api.pause(target_id) if paused else api.resume(target_id))


@approvals.command("pause")
@click.argument("targets", nargs=-1, required=True, shell_complete=complete_targets)
@click.pass_context
def pause(ctx: click.Context, targets: tuple[str, ...]) -> None:
    """The kill switch: refuse every AI command on these containers or agents at once,
    and reject the ones waiting. Prints each target paused."""
    for_each_id(ctx, targets, lambda client, target: _switch(client, target, True))


@approvals.command("resume")
@click.argument("targets", nargs=-1, required=True, shell_complete=complete_targets)
@click.pass_context
def resume(ctx: click.Context, targets: tuple[str, ...]) -> None:
    """Let AI commands on these targets through their policy again."""
    for_each_id(ctx, targets, lambda client, target: _switch(client, target, False))


@approvals.command("policy")
@click.argument("target", shell_complete=complete_targets)
@click.option("--mode", type=click.Choice(MODES), help="Set the mode (else: show the policy).")
@click.option("--allow", multiple=True, metavar="REGEX", help="Run matching commands at once.")
@click.option("--deny", multiple=True, metavar="REGEX", help="Refuse matching commands.")
@json_option
@click.pass_context
def policy(
    ctx: click.Context,
    target: str,
    mode: str | None,
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show or set how a container or agent treats an AI's supervised commands."""
    if mode is None and (allow or deny):
        raise click.UsageError("--allow and --deny go with --mode.")

    async def call(client: AsyncClient) -> Policy:
        target_id = await client.resolve_target(target)
        api = client.agents if target_id.startswith("agt_") else client.containers
        if mode is None:
            return await api.get_policy(target_id)
        chosen = next(m for m in MODES if m == mode)
        return await api.set_policy(target_id, chosen, allow=allow, deny=deny)

    try:
        answer = with_client(env_of(ctx), call)
    except RexecError as err:
        fail(err)
    if as_json:
        click.echo(to_json(dict(answer.raw)))
        return
    click.echo(f"mode:   {answer.mode}" + ("  (AI paused)" if answer.paused else ""))
    for label, patterns in (("allow:", answer.allow), ("deny:", answer.deny)):
        for pattern in patterns:
            click.echo(f"{label:7} {pattern}")
