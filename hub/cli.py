"""`rexec-hub`: serve the hub, and a few administration commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from common import __version__, logfmt
from common.errors import RexecError
from common.sdnotify import Notifier
from hub.datadir import private_umask, secure
from hub.settings import HubSettings, load_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rexec-hub", description="The Rexec hub.")
    p.add_argument("--version", action="version", version=f"rexec-hub {__version__}")
    p.add_argument("--config", type=Path, help="TOML config file (also REXEC_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the hub")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--data-dir", type=Path, help="where the hub keeps its state")
    user = sub.add_parser("user", help="manage accounts")
    usub = user.add_subparsers(dest="action", required=True)
    create = usub.add_parser("create", help="create an account")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--name")
    create.add_argument("--data-dir", type=Path)
    plan = usub.add_parser("plan", help="set an account's plan (no payment needed)")
    plan.add_argument("--email", required=True)
    plan.add_argument("--plan", required=True, help="a plan id from the config, e.g. pro")
    plan.add_argument("--data-dir", type=Path)
    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate.add_argument("--data-dir", type=Path)
    fingerprint = sub.add_parser("ssh-fingerprint", help="print the SSH gateway's host key")
    fingerprint.add_argument("--data-dir", type=Path)
    return p


async def _serve(settings: HubSettings) -> None:
    # Handle SIGTERM before saying we listen: a stop sent right after must be clean.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from hub.app import create_app
    from hub.server import HubRunner

    app = create_app(settings)
    runner = HubRunner(app, handle_signals=False, access_log=None)
    try:
        await runner.setup()
    except BaseException:
        await runner.cleanup()  # what started before the failure stops cleanly
        raise
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    server = site._server
    port = settings.port
    if server is not None and getattr(server, "sockets", None):
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    from hub.state import CLUSTER, SSH

    cluster = app[CLUSTER]
    if cluster is not None:  # other hubs relay to this one at this address
        await cluster.advertise(settings.advertise_url or f"http://{settings.host}:{port}")
    print(f"listening on http://{settings.host}:{port}", flush=True)

    if SSH in app:
        print(f"ssh gateway on {app[SSH].host}:{app[SSH].port}", flush=True)
    notifier = Notifier()  # systemd Type=notify: ready, watchdog, stopping
    notifier.ready(f"listening on {settings.host}:{port}")
    watchdog = asyncio.create_task(notifier.watchdog())
    await stop.wait()
    notifier.stopping()
    watchdog.cancel()
    await runner.cleanup()


async def _create_user(settings: HubSettings, email: str, password: str, name: str | None) -> str:
    from hub.accounts import Accounts
    from hub.app import jwt_secret
    from hub.db.engine import Database

    secure(settings.data_dir)
    db = Database(settings.effective_database_url)
    try:
        await db.migrate()
        user = await Accounts(db, settings, jwt_secret(settings)).register(email, password, name)
        return user.id
    finally:
        await db.close()


async def _set_plan(settings: HubSettings, email: str, plan: str) -> str:
    from hub.billing.service import Billing
    from hub.db.engine import Database

    secure(settings.data_dir)
    db = Database(settings.effective_database_url)
    try:
        await db.migrate()
        return await Billing(db, settings, None).set_plan_by_email(email, plan)
    finally:
        await db.close()


async def _migrate(settings: HubSettings) -> None:
    from hub.db.engine import Database

    secure(settings.data_dir)
    db = Database(settings.effective_database_url)
    try:
        await db.migrate()
    finally:
        await db.close()


def _run(coro: object) -> object:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    private_umask()  # before anything is created: the data directory is the hub's alone
    args = _parser().parse_args(argv)
    data_dir = getattr(args, "data_dir", None)
    try:
        settings = load_settings(
            args.config,
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            data_dir=data_dir,
        )
    except Exception as exc:
        sys.exit(f"rexec-hub: invalid settings: {exc}")
    logfmt.configure(settings.log_level.upper(), settings.log_format)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        if args.command == "serve":
            with contextlib.suppress(KeyboardInterrupt):
                _run(_serve(settings))
        elif args.command == "user" and args.action == "plan":
            user_id = _run(_set_plan(settings, args.email, args.plan))
            print(f"{user_id} <{args.email}> is on the {args.plan} plan")
        elif args.command == "user":
            user_id = _run(_create_user(settings, args.email, args.password, args.name))
            print(f"created {user_id} <{args.email}>")
        elif args.command == "ssh-fingerprint":
            from hub.ssh.gateway import host_key_fingerprint

            print(host_key_fingerprint(settings.data_dir))
        elif args.command == "migrate":
            _run(_migrate(settings))
            print("database is up to date")
    except RexecError as exc:
        sys.exit(f"rexec-hub: {exc.message}")
    except OSError as exc:
        sys.exit(f"rexec-hub: {exc}")


if __name__ == "__main__":
    main()
