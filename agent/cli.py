"""`rexec-agent`: register this host with a hub, run the agent, show its status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import platform
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from agent import settings as config
from common import __version__, logfmt
from common.agentauth import generate_key, private_pem, public_openssh


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rexec-agent", description="The Rexec agent.")
    p.add_argument("--version", action="version", version=f"rexec-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="register this host with a hub")
    reg.add_argument("--hub", required=True, help="the hub's URL, e.g. https://rexec.example")
    reg.add_argument("--token", required=True, help="a one-time registration token")
    reg.add_argument("--name", help="a name for this host (default: its hostname)")
    reg.add_argument("--config", type=Path, help="config file to write")
    run = sub.add_parser("run", help="connect to the hub and serve terminals")
    run.add_argument("--config", type=Path, help="config file to read")
    st = sub.add_parser("status", help="show the agent's connection and sessions")
    st.add_argument("--config", type=Path, help="config file to read")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def register(hub: str, token: str, name: str | None, path: Path) -> None:
    hub = hub.rstrip("/")
    if not hub.startswith(("http://", "https://")):
        sys.exit("rexec-agent: --hub must start with http:// or https://")
    key = generate_key()
    facts = {
        "token": token,
        "name": name or "",  # the hub falls back to the token's name, then the hostname
        "public_key": public_openssh(key),
        "hostname": socket.gethostname(),
        "os": f"{platform.system().lower()} {platform.release()}",
        "arch": platform.machine(),
        "version": __version__,
    }
    req = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        hub + "/api/agents/register",
        data=json.dumps(facts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            answer = json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            err = json.load(exc)["error"]
            reason = f"{err['message']} ({err['code']})"
        except (ValueError, KeyError, TypeError):
            reason = f"HTTP {exc.code}"
        sys.exit(f"rexec-agent: registration refused: {reason}")
    except (urllib.error.URLError, OSError) as exc:
        sys.exit(f"rexec-agent: cannot reach the hub at {hub}: {exc}")
    key_file = path.with_name("agent.key")
    config.write_private(key_file, private_pem(key))
    config.save(
        path,
        {"hub": hub, "agent_id": answer["id"], "name": answer["name"], "key_file": str(key_file)},
    )
    print(f"registered {answer['id']} ({answer['name']}) with {hub}; config in {path}")


def status(path: Path, as_json: bool) -> None:
    settings = config.load(path)
    state: dict[str, object] = {"state": "not running", "sessions": 0, "last_error": None}
    if settings.state_file and settings.state_file.exists():
        with contextlib.suppress(ValueError):
            state.update(json.loads(settings.state_file.read_text()))
    state.update(hub=settings.hub, agent_id=settings.agent_id, name=settings.name)
    if as_json:
        print(json.dumps(state, indent=2))
        return
    since = state.get("since")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        if isinstance(since, float)
        else "-"
    )
    print(f"agent:      {settings.agent_id} ({settings.name})")
    print(f"hub:        {settings.hub}")
    print(f"connection: {state['state']} since {when}")
    print(f"sessions:   {state['sessions']}")
    print(f"last error: {state['last_error'] or '-'}")


async def _run(path: Path) -> None:
    from agent.connection import run

    settings = config.load(path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    await run(settings, stop)


def _dump_tasks() -> None:
    """SIGUSR1: log what every task is waiting on (for a stuck agent)."""
    import io

    log = logging.getLogger("rexec.agent")
    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(file=out)
        log.warning("task %s:\n%s", task.get_name(), out.getvalue())


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    path: Path = args.config or config.default_config_path()
    logfmt.configure(logging.INFO)
    if args.command == "register":
        register(args.hub, args.token, args.name, path)
    elif args.command == "status":
        status(path, args.json)
    elif args.command == "run":
        from agent.connection import FatalError

        try:
            import uvloop

            uvloop.run(_run(path))
        except FatalError as exc:
            sys.exit(f"rexec-agent: {exc}")
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
