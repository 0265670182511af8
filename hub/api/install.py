"""What `curl -fsSL HUB/install.sh | sh` needs: the script, the agent wheel, the unit.

- `GET /install.sh`: the top-level install.sh with this hub's URL and version filled in.
- `GET /install/rexec-<version>-py3-none-any.whl` (alias `/install/agent.whl`): a wheel of
  the very code this hub runs, so agents installed from it speak its version. Found, in
  order: a cached build in `<data_dir>/install/`; the wheel this hub was installed from
  (pip's `direct_url.json`); else built once from the source tree with `pip wheel`.
- `GET /install/rexec-agent.service`: the agent's systemd unit.
- `GET /install/agent-requirements.txt`: the agent's lock (requirements/agent.txt: exact
  versions with hashes), so install.sh installs on a server what our tests ran.

`hub/web/install.sh`, `hub/web/rexec-agent.service` and `hub/web/agent-requirements.txt` are
symlinks to the top-level files
(an editable install reads through them; a built wheel carries their contents).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from aiohttp import web

from common import __version__
from common.errors import NotFound, Unavailable
from hub.api.agents import public_url
from hub.state import SETTINGS

log = logging.getLogger("rexec.hub.install")
routes = web.RouteTableDef()

WEB = Path(__file__).resolve().parent.parent / "web"
PROJECT = Path(__file__).resolve().parent.parent.parent  # the source tree, when there is one
WHEEL = f"rexec-{__version__}-py3-none-any.whl"
SOURCES = ("common", "agent", "hub", "client")
HUB_PLACEHOLDER = "REXEC_HUB_URL_PLACEHOLDER"
VERSION_PLACEHOLDER = "REXEC_VERSION_PLACEHOLDER"
_locks: weakref.WeakKeyDictionary[web.Application, asyncio.Lock] = weakref.WeakKeyDictionary()


def render_script(hub: str) -> str:
    text = (WEB / "install.sh").read_text()
    return text.replace(HUB_PLACEHOLDER, hub).replace(VERSION_PLACEHOLDER, __version__)


@routes.get("/install.sh")
async def install_script(request: web.Request) -> web.Response:
    return web.Response(
        text=render_script(public_url(request)),
        content_type="text/x-shellscript",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


@routes.get("/install/rexec-agent.service")
async def agent_unit(request: web.Request) -> web.Response:
    return web.Response(
        text=(WEB / "rexec-agent.service").read_text(), content_type="text/plain", charset="utf-8"
    )


@routes.get("/install/agent-requirements.txt")
async def agent_requirements(request: web.Request) -> web.Response:
    return web.Response(
        text=(WEB / "agent-requirements.txt").read_text(),
        content_type="text/plain",
        charset="utf-8",
    )


@routes.get("/install/agent.whl")
@routes.get(f"/install/{WHEEL}")
async def agent_wheel(request: web.Request) -> web.StreamResponse:
    app = request.app
    lock = _locks.setdefault(app, asyncio.Lock())
    async with lock:  # one build at a time; the others then find it cached
        path = await asyncio.to_thread(locate_wheel, app[SETTINGS].data_dir / "install")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{WHEEL}"',
        },
    )


def installed_wheel() -> Path | None:
    """The wheel file this hub was installed from, when pip recorded one."""
    try:
        raw = metadata.distribution("rexec").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not raw:
        return None
    try:
        url = str(json.loads(raw).get("url", ""))
    except ValueError:
        return None
    parsed = urlparse(url)
    path = Path(unquote(parsed.path))
    if parsed.scheme == "file" and path.name == WHEEL and path.is_file():
        return path
    return None


def _source_files() -> list[Path]:
    files = [PROJECT / "pyproject.toml", PROJECT / "README.md"]
    for package in SOURCES:
        for dirpath, dirnames, filenames in os.walk(PROJECT / package, followlinks=False):
            dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "node_modules")]
            files += [Path(dirpath) / f for f in filenames]
    return files


def _newest_source() -> float:
    newest = 0.0
    for f in _source_files():
        try:  # through symlinks, so an edit to install.sh counts
            newest = max(newest, f.stat().st_mtime)
        except OSError:
            continue
    return newest


def has_source_tree() -> bool:
    pyproject = PROJECT / "pyproject.toml"
    return pyproject.is_file() and 'name = "rexec"' in pyproject.read_text()


def locate_wheel(cache: Path) -> Path:
    """The agent wheel for this hub's version (blocking: run it in a thread)."""
    cached = cache / WHEEL
    source = has_source_tree()
    if cached.is_file() and (not source or cached.stat().st_mtime >= _newest_source()):
        return cached
    if not source:
        found = installed_wheel()
        if found is not None:
            return found
        raise NotFound(
            "This hub has no agent wheel to serve; install the agent from the package index.",
            code="agent_wheel_unavailable",
        )
    build_wheel(cache)
    return cached


def build_wheel(cache: Path) -> None:
    """`pip wheel --no-deps` of a clean copy of the source tree (no build/ left in it)."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rexec-wheel-") as tmp:
        tree = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "node_modules", "*.pyc", "*.egg-info")
        tree.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(PROJECT / name, tree / name)
        for package in SOURCES:
            # symlinks=False: the wheel gets the contents of hub/web/install.sh etc.
            shutil.copytree(PROJECT / package, tree / package, ignore=ignore, symlinks=False)
        out = Path(tmp) / "out"
        log.info("building the agent wheel %s", WHEEL)
        done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(tree)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        built = out / WHEEL
        if done.returncode != 0 or not built.is_file():
            log.error("building the agent wheel failed: %s", done.stderr[-2000:])
            raise Unavailable("The agent wheel could not be built.", code="agent_wheel_unavailable")
        tmp_target = cache / (WHEEL + ".tmp")
        shutil.copyfile(built, tmp_target)
        os.replace(tmp_target, cache / WHEEL)
