"""What every `rexec` command shares: the environment (settings, hub, credentials),
running the SDK's coroutines, turning errors into one line and an exit code, and
completing ids in the shell.

Exit codes (docs/cli.md): 0 done; 1 the hub refused or failed; 2 bad usage; 3 not
signed in or credentials refused; 4 no such object; 5 hub unreachable; 130
interrupted. `exec` and `connect` exit with the remote program's code, and with 255
when rexec itself fails, as ssh does, so the two cannot be confused.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
from click.shell_completion import CompletionItem

from client.config import ClientSettings, CredentialsFile, resolve_hub
from client.errors import (
    ApiError,
    HubUnreachable,
    NotFound,
    NotSignedIn,
    RexecError,
    Unauthorized,
)
from client.output import raw_list
from client.progress import Progress
from client.sdk import AsyncClient

T = TypeVar("T")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_INTERRUPTED = 130
EXIT_OWN_FAILURE = 255  # exec and connect: rexec failed, not the remote program
COMPLETION_TIMEOUT = 3.0
SIGN_IN_AGAIN = frozenset(
    {"token_expired", "invalid_token", "token_reused", "unauthorized", "agent_revoked"}
)


class OneLineUsageError(click.ClickException):
    """Bad input that is not about the command line's shape: one line, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"rexec: {self.message}", err=True)


@dataclass
class Env:
    """The settings loaded once at the entry point, and the hub they resolve to."""

    settings: ClientSettings
    file: CredentialsFile
    hub_option: str | None

    @property
    def hub(self) -> str:
        try:
            return resolve_hub(self.hub_option, self.settings, self.file)
        except ValueError as exc:
            raise OneLineUsageError(f"{exc} (use http://HOST:PORT or https://HOST)") from None

    def client(self, *, signed_in: bool = True) -> AsyncClient:
        """A client with this hub's credentials (REXEC_TOKEN wins over stored ones)."""
        hub = self.hub
        if self.settings.token:
            return AsyncClient(hub, token=self.settings.token)
        store = self.file.store(hub)
        if signed_in and store.load() is None:
            raise NotSignedIn(f"Not signed in to {hub}: run `rexec login` first.")
        return AsyncClient(hub, store=store)


def make_env(hub_option: str | None) -> Env:
    settings = ClientSettings()
    return Env(settings=settings, file=CredentialsFile(settings.config_dir), hub_option=hub_option)


def env_of(ctx: click.Context) -> Env:
    root = ctx.find_root()
    if not isinstance(root.obj, Env):
        root.obj = make_env(root.params.get("hub"))
    return root.obj


def with_client(
    env: Env, call: Callable[[AsyncClient], Awaitable[T]], *, signed_in: bool = True
) -> T:
    """Run `call` with a client of the hub, closing the client afterwards."""

    async def main() -> T:
        async with env.client(signed_in=signed_in) as client:
            return await call(client)

    return run(main())


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def one_line(text: str) -> str:
    return " ".join(text.split())


def describe(err: RexecError) -> str:
    """The error as the one line a person reads."""
    message = one_line(err.message) or type(err).__name__
    if isinstance(err, ApiError | NotSignedIn):
        message = f"{message} ({err.code})"
    if isinstance(err, Unauthorized) and err.code in SIGN_IN_AGAIN:
        message += "; run `rexec login`"
    return message


def exit_code_for(err: RexecError) -> int:
    if isinstance(err, Unauthorized | NotSignedIn):
        return EXIT_AUTH
    if isinstance(err, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(err, HubUnreachable):
        return EXIT_UNREACHABLE
    return EXIT_ERROR


def remote_failure_code(err: RexecError) -> int:
    """`exec` and `connect` leave with 255 when rexec failed (as ssh does, so a remote
    program's own code stays readable), except 4 for a target that does not exist."""
    return EXIT_NOT_FOUND if isinstance(err, NotFound) else EXIT_OWN_FAILURE


def report(err: RexecError) -> None:
    click.echo(f"rexec: {describe(err)}", err=True)


def fail(err: RexecError, code: int | None = None) -> NoReturn:
    report(err)
    raise click.exceptions.Exit(exit_code_for(err) if code is None else code)


# -- shell completion of ids ---------------------------------------------------------


def _complete(
    ctx: click.Context,
    incomplete: str,
    fetch: Callable[[AsyncClient], Awaitable[list[tuple[str, str]]]],
) -> list[CompletionItem]:
    """Ids from the hub for the shell; nothing at all when the hub cannot say."""
    try:
        env = make_env(ctx.find_root().params.get("hub"))

        async def main() -> list[tuple[str, str]]:
            async with env.client() as client:
                return await asyncio.wait_for(fetch(client), COMPLETION_TIMEOUT)

        items = run(main())
    except Exception:
        return []
    return [
        CompletionItem(value, help=help) for value, help in items if value.startswith(incomplete)
    ]


async def _containers(client: AsyncClient) -> list[tuple[str, str]]:
    return [(c.id, c.name) for c in await client.containers.list()]


async def _agents(client: AsyncClient) -> list[tuple[str, str]]:
    return [(a.id, a.name) for a in await client.agents.list()]


async def _sessions(client: AsyncClient) -> list[tuple[str, str]]:
    return [(s.id, s.target) for s in await client.sessions.list()]


async def _targets(client: AsyncClient) -> list[tuple[str, str]]:
    containers, agents = await asyncio.gather(_containers(client), _agents(client))
    return containers + agents


def complete_containers(
    ctx: click.Context, _: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _complete(ctx, incomplete, _containers)


def complete_agents(
    ctx: click.Context, _: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _complete(ctx, incomplete, _agents)


def complete_sessions(
    ctx: click.Context, _: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _complete(ctx, incomplete, _sessions)


def complete_targets(
    ctx: click.Context, _: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _complete(ctx, incomplete, _targets)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def show_list(
    ctx: click.Context,
    fetch: Callable[[AsyncClient], Awaitable[Sequence[Any]]],
    plural: str,
    table: Callable[[Sequence[Any]], str],
    *,
    as_json: bool,
    quiet: bool,
) -> None:
    """What every `ls` prints: a table, ids only (`-q`), or the hub's JSON (`--json`)."""
    try:
        items = with_client(env_of(ctx), fetch)
    except RexecError as err:
        fail(err)
    if as_json:
        click.echo(raw_list(plural, items))
    elif quiet:
        for item in items:
            click.echo(item.id)
    else:
        click.echo(table(items))


def for_each_id(
    ctx: click.Context,
    ids: Sequence[str],
    action: Callable[[AsyncClient, str], Awaitable[None]],
    progress: str | None = None,
) -> NoReturn:
    """Apply `action` to each id, printing the ids done; exits with the first failure's code
    after trying them all (as `rm` does)."""

    async def call(client: AsyncClient) -> int:
        worst = 0
        async with Progress(progress or "", enabled=None if progress else False) as shown:
            for one in ids:
                shown.update(one)
                try:
                    await action(client, one)
                except RexecError as err:
                    report(err)
                    worst = worst or exit_code_for(err)
                    continue
                click.echo(one)
        return worst

    try:
        code = with_client(env_of(ctx), call)
    except RexecError as err:
        fail(err)
    ctx.exit(code)
