"""`rexec login`, `logout`, `whoami`."""

from __future__ import annotations

import sys

import click

from client.auth import Credentials
from client.cli.base import EXIT_UNREACHABLE, Env, env_of, fail, run, with_client
from client.errors import HubUnreachable, NotSignedIn, PasscodeRequired, RexecError
from client.models import User
from client.output import to_json
from client.sdk import AsyncClient


def _read_line(what: str) -> str:
    line = sys.stdin.readline()
    if not line:
        raise click.UsageError(f"--{what}-stdin was given but standard input is empty.")
    return line.rstrip("\r\n")


def _sign_in(env: Env, email: str, password: str, passcode: str | None) -> User:
    async def main() -> User:
        async with AsyncClient(env.hub, store=env.file.store(env.hub)) as client:
            return await client.login(email, password, passcode)

    return run(main())


def _sign_in_with_token(env: Env, token: str) -> User:
    async def main() -> User:
        async with AsyncClient(env.hub, token=token) as client:
            user = await client.user()  # the token is stored only if the hub takes it
        env.file.store(env.hub).save(Credentials(access_token=token, email=user.email))
        return user

    return run(main())


@click.command()
@click.option("--email", "-e", help="Account email (prompted for when missing).")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.option("--passcode", help="The current passcode (TOTP), when the account has one.")
@click.option(
    "--token",
    metavar="TOKEN",
    help="Sign in with an API token (rx_...) instead of a password; '-' reads it from stdin.",
)
@click.pass_context
def login(
    ctx: click.Context,
    email: str | None,
    password_stdin: bool,
    passcode: str | None,
    token: str | None,
) -> None:
    """Sign in to the hub and keep the credentials for the next commands.

    The password is prompted for without echo. When the account has a passcode the
    hub asks for it and so does this command. Credentials are stored with mode 0600
    in $XDG_CONFIG_HOME/rexec/credentials.json, and this hub becomes the default.
    """
    env = env_of(ctx)
    try:
        if token is not None:
            token = _read_line("token").strip() if token == "-" else token.strip()  # noqa: S105
            user = _sign_in_with_token(env, token)
        else:
            email = email or click.prompt("Email")
            password = (
                _read_line("password")
                if password_stdin
                else click.prompt("Password", hide_input=True)
            )
            try:
                user = _sign_in(env, email, password, passcode)
            except PasscodeRequired:
                if passcode is not None:
                    raise
                passcode = _read_line("passcode") if password_stdin else click.prompt("Passcode")
                user = _sign_in(env, email, password, passcode.strip())
        env.file.set_default_hub(env.hub)
    except RexecError as err:
        fail(err)
    how = " with a token" if token is not None else ""
    click.echo(f"Signed in to {env.hub} as {user.email}{how}.")


@click.command()
@click.option("--everywhere", is_flag=True, help="End every sign-in of the account.")
@click.option("--revoke-tokens", is_flag=True, help="With --everywhere: revoke its API tokens too.")
@click.pass_context
def logout(ctx: click.Context, everywhere: bool, revoke_tokens: bool) -> None:
    """Sign out: the hub revokes this sign-in and the stored credentials are removed."""
    if revoke_tokens and not everywhere:
        raise click.UsageError("--revoke-tokens goes with --everywhere.")
    env = env_of(ctx)
    store = env.file.store(env.hub)
    if store.load() is None:
        fail(NotSignedIn(f"Not signed in to {env.hub}."))
    try:
        with_client(
            env,
            lambda client: client.logout(everywhere=everywhere, revoke_tokens=revoke_tokens),
        )
    except HubUnreachable as err:
        click.echo(
            f"rexec: signed out here, but the hub could not be told: {err.message}", err=True
        )
        raise click.exceptions.Exit(EXIT_UNREACHABLE) from None
    except RexecError as err:
        store.save(None)
        fail(err)
    click.echo(f"Signed out of {env.hub}.")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the hub's answer as JSON.")
@click.pass_context
def whoami(ctx: click.Context, as_json: bool) -> None:
    """Show who the stored credentials belong to."""
    env = env_of(ctx)
    try:
        user = with_client(env, lambda client: client.user())
    except RexecError as err:
        fail(err)
    if as_json:
        click.echo(to_json(dict(user.raw)))
        return
    name = f" ({user.name})" if user.name else ""
    click.echo(f"{user.email}{name} {user.id}, plan {user.plan or '-'}, on {env.hub}")
