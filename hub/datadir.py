"""The data directory is private to the hub's user, whatever umask it was started with.

It holds the SQLite database (with its -wal and -shm files), the JWT secret that seals
passcode secrets too, the SSH host key, recordings and the agent wheel cache. `rexec-hub`
sets its umask to 077 before it creates anything, so every file it makes is 0600 and
every directory 0700; `secure` makes the directory itself 0700 and tightens what an
older hub (or a copy made with another umask) left group- or world-readable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """New files 0600, new directories 0700 (called once, as the process starts)."""
    os.umask(PRIVATE_UMASK)


def secure(data_dir: Path) -> None:
    """Create the data directory 0700 if needed, and take group and world access away
    from it and everything in it (symlinks are left alone, not followed)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(data_dir)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            _tighten(Path(root) / name)


def _tighten(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:  # gone meanwhile (a recording pruned)
        return
    if stat.S_ISLNK(mode) or not mode & 0o077:
        return
    os.chmod(path, stat.S_IMODE(mode) & 0o700)
