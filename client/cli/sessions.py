"""`rexec sessions ls|play|download|share|end`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click

from client.cli.base import (
    EXIT_INTERRUPTED,
    complete_sessions,
    env_of,
    fail,
    for_each_id,
    run,
    show_list,
    with_client,
)
from client.cli.containers import json_option, quiet_option
from client.errors import RexecError
from client.models import Role
from client.output import sessions_table, to_json
from client.player import Recording, parse_cast, play
from client.progress import Progress
from client.sdk import AsyncClient


@click.group()
def sessions() -> None:
    """Terminal sessions: list, replay or download recordings, share, end."""


@sessions.command("ls")
@json_option
@quiet_option
@click.pass_context
def list_sessions(ctx: click.Context, as_json: bool, quiet: bool) -> None:
    """List your sessions, live and ended, newest first."""
    fetch = lambda client: client.sessions.list()  # noqa: E731
    show_list(ctx, fetch, "sessions", sessions_table, as_json=as_json, quiet=quiet)


def _write_out(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


@sessions.command("play")
@click.argument("source", shell_complete=complete_sessions)
@click.option(
    "--speed",
    "-s",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Playback speed (2 is twice as fast).",
)
@click.option(
    "--idle-time-limit",
    "-i",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Cap every pause at this long (default: the recording's own limit, if any).",
)
@click.pass_context
def play_command(
    ctx: click.Context, source: str, speed: float, idle_time_limit: float | None
) -> None:
    """Replay a session's recording in this terminal.

    SOURCE is a session id, or the path of an asciicast v2 file (from `sessions
    download` or asciinema). Ctrl-C stops the replay.

    \b
    Examples:
      rexec sessions play ses_123 --speed 2 --idle-time-limit 1
      rexec sessions play ses_123.cast
    """
    try:
        if os.path.exists(source):
            recording = parse_cast(Path(source).read_bytes())
        else:
            recording = parse_cast(
                with_client(env_of(ctx), lambda client: client.sessions.recording(source))
            )
    except RexecError as err:
        fail(err)
    except OSError as err:
        raise click.FileError(source, err.strerror) from None
    try:
        run(_play(recording, speed, idle_time_limit))
    except KeyboardInterrupt:
        ctx.exit(EXIT_INTERRUPTED)


async def _play(recording: Recording, speed: float, idle_time_limit: float | None) -> None:
    await play(recording, _write_out, speed=speed, idle_time_limit=idle_time_limit)


@sessions.command("download")
@click.argument("session_id", metavar="SESSION", shell_complete=complete_sessions)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    help="Where to write it (default: SESSION.cast; '-' for standard output).",
)
@click.pass_context
def download(ctx: click.Context, session_id: str, output: str | None) -> None:
    """Save a session's recording as an asciicast v2 file (playable by asciinema)."""
    path = output or f"{session_id}.cast"

    async def call(client: AsyncClient) -> int:
        with _open_output(path) as sink:

            def write(data: bytes) -> None:
                sink.write(data)

            async with Progress(f"Downloading {session_id}") as progress:
                return await client.sessions.download_recording(session_id, write, progress.bytes)

    try:
        size = with_client(env_of(ctx), call)
    except RexecError as err:
        if path != "-":
            with contextlib.suppress(OSError):
                Path(path).unlink()
        fail(err)
    if path != "-":
        click.echo(f"{path} ({size} bytes)", err=True)


@contextlib.contextmanager
def _open_output(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with open(path, "wb") as f:
        yield f


@sessions.command("share")
@click.argument("session_id", metavar="SESSION", shell_complete=complete_sessions)
@click.option(
    "--role",
    type=click.Choice(["viewer", "writer"]),
    default="viewer",
    show_default=True,
    help="What people joining through the link may do.",
)
@click.option("--passcode", help="A passcode they must also give.")
@click.option("--expires-in", type=int, metavar="SECONDS", help="The link stops working after.")
@json_option
@click.pass_context
def share(
    ctx: click.Context,
    session_id: str,
    role: str,
    passcode: str | None,
    expires_in: int | None,
    as_json: bool,
) -> None:
    """Create a link that lets others watch (or type in) a session; prints the URL."""
    chosen: Role = "writer" if role == "writer" else "viewer"
    try:
        answer = with_client(
            env_of(ctx),
            lambda client: client.sessions.share(
                session_id, chosen, passcode=passcode, expires_in=expires_in
            ),
        )
    except RexecError as err:
        fail(err)
    if as_json:
        click.echo(to_json(dict(answer.raw)))
        return
    click.echo(answer.url)
    if answer.expires_at:
        click.echo(f"# {chosen} link, valid until {answer.expires_at.isoformat()}", err=True)


@sessions.command("end")
@click.argument("ids", nargs=-1, required=True, shell_complete=complete_sessions)
@click.pass_context
def end(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """End live sessions (the program gets SIGHUP). Prints each id ended."""
    for_each_id(ctx, ids, lambda client, session_id: client.sessions.end(session_id))
