"""Host facts (sent once in Hello) and metrics (sent periodically), from psutil."""

from __future__ import annotations

import os
import platform
import socket
import time
from typing import Any

import psutil

from common import __version__


def host_facts() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "os": f"{platform.system().lower()} {platform.release()}",
        "arch": platform.machine(),
        "version": __version__,
        "cpus": os.cpu_count() or 1,
        "python": platform.python_version(),
    }


def sample() -> dict[str, Any]:
    """One sample; cheap enough to take every few seconds (run it in a thread)."""
    mem = psutil.virtual_memory()
    disk = psutil.disk_usage("/")
    load1, load5, load15 = os.getloadavg()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_total": mem.total,
        "memory_used": mem.total - mem.available,
        "memory_percent": mem.percent,
        "disk_total": disk.total,
        "disk_used": disk.used,
        "disk_percent": disk.percent,
        "load1": load1,
        "load5": load5,
        "load15": load15,
        "uptime_seconds": int(time.time() - psutil.boot_time()),
        "agent_rss": psutil.Process().memory_info().rss,
    }
