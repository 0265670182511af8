"""`rexec tokens create|ls|revoke` and `rexec keys add|ls|rm`: the credentials an AI or a
script uses (API tokens) and the SSH gateway takes (keys). Each is a person's or an
agent's (`--kind`, docs/security.md): an agent's is always under the target's policy."""

from __future__ import annotations

from pathlib import Path

import click

from client.cli.base import env_of, fail, for_each_id, with_client
from client.cli.containers import json_option
from client.errors import RexecError
from client.output import to_json

KINDS = ("agent", "person")
kind_option = click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="agent",
    show_default=True,
    help="An agent's (an AI or a script: the target's policy always applies) or a person's.",
)


@click.group()
def tokens() -> None:
    """API tokens (rx_...) for AI clients and scripts."""


@tokens.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, help="A scope (repeat; default: the hub's).")
@click.option("--expires-in", type=int, metavar="SECONDS", help="Validity (default: none).")
@kind_option
@json_option
@click.pass_context
def create_token(
    ctx: click.Context,
    name: str,
    scopes: tuple[str, ...],
    expires_in: int | None,
    kind: str,
    as_json: bool,
) -> None:
    """Create a token; prints it (shown once)."""
    try:
        made = with_client(
            env_of(ctx),
            lambda c: c.tokens.create(
                name, scopes=scopes or None, expires_in=expires_in, kind=kind
            ),
        )
    except RexecError as err:
        fail(err)
    click.echo(to_json(dict(made.raw)) if as_json else made.token)


@tokens.command("ls")
@json_option
@click.pass_context
def list_tokens(ctx: click.Context, as_json: bool) -> None:
    """List live tokens, newest first."""
    try:
        rows = with_client(env_of(ctx), lambda c: c.tokens.list())
    except RexecError as err:
        fail(err)
    if as_json:
        click.echo(to_json({"tokens": [dict(r.raw) for r in rows]}))
        return
    for row in rows:
        click.echo(f"{row.id}  {row.kind:<6}  {','.join(row.scopes)}  {row.name}")


@tokens.command("revoke")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.pass_context
def revoke_tokens(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Revoke tokens; their live terminals close. Prints each id revoked."""
    for_each_id(ctx, ids, lambda c, token_id: c.tokens.revoke(token_id))


@click.group()
def keys() -> None:
    """SSH public keys for the SSH gateway."""


@keys.command("add")
@click.argument("name")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@kind_option
@json_option
@click.pass_context
def add_key(ctx: click.Context, name: str, public_key: Path, kind: str, as_json: bool) -> None:
    """Register a public key file (like ~/.ssh/id_ed25519.pub); prints its id."""
    text = public_key.read_text(errors="replace").strip()
    try:
        made = with_client(env_of(ctx), lambda c: c.keys.add(name, text, kind=kind))
    except RexecError as err:
        fail(err)
    click.echo(to_json(dict(made.raw)) if as_json else f"{made.id} {made.kind} {made.fingerprint}")


@keys.command("ls")
@json_option
@click.pass_context
def list_keys(ctx: click.Context, as_json: bool) -> None:
    """List registered keys, newest first."""
    try:
        rows = with_client(env_of(ctx), lambda c: c.keys.list())
    except RexecError as err:
        fail(err)
    if as_json:
        click.echo(to_json({"keys": [dict(r.raw) for r in rows]}))
        return
    for row in rows:
        click.echo(f"{row.id}  {row.kind:<6}  {row.fingerprint}  {row.name}")


@keys.command("rm")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.pass_context
def remove_keys(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Remove keys; SSH connections they opened end. Prints each id removed."""
    for_each_id(ctx, ids, lambda c, key_id: c.keys.remove(key_id))
