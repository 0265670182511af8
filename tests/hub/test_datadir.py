"""Files at rest: whatever umask `rexec-hub` is started with, its data directory is 0700
and what it creates there 0600 (directories 0700); an older, looser directory is
tightened when the hub starts."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support import BIN, Proc


def modes(data_dir: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(root) / name
            found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def loose(found: dict[str, int]) -> dict[str, str]:
    return {name: oct(mode) for name, mode in found.items() if mode & 0o077}


@pytest.mark.backend_independent
async def test_data_dir_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    env = {**os.environ, "REXEC_SSH_PORT": "0"}
    env.pop("REXEC_DATABASE_URL", None)
    env.pop("REXEC_REDIS_URL", None)
    hub = str(BIN / "rexec-hub")
    subprocess.run(
        ["sh", "-c", f'umask 022 && exec "{hub}" migrate --data-dir "{data_dir}"'],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    found = modes(data_dir)
    assert "rexec.db" in found and not loose(found), found

    # A directory an older hub left open (0755, 0644) is tightened by `serve`, and what
    # the running hub makes (secret, host key, WAL files) is private too.
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "rexec.db", 0o644)
    (data_dir / "recordings").mkdir(mode=0o755)
    (data_dir / "recordings" / "ses_old.cast").write_text("{}\n")
    os.chmod(data_dir / "recordings" / "ses_old.cast", 0o644)
    serve = f'umask 022 && exec "{hub}" serve --port 0 --data-dir "{data_dir}"'
    proc = Proc(["sh", "-c", serve], env={"REXEC_SSH_PORT": "0"})
    try:
        await proc.read_until(r"listening on http://")
        found = modes(data_dir)
        assert {"jwt_secret", "rexec.db", "recordings/ses_old.cast"} <= set(found), found
        assert not loose(found), found
        assert found["."] == 0o700 and found["rexec.db"] == 0o600, found
    finally:
        proc.kill()
