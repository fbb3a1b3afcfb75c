"""Machine identity for results: CPU model, cores, cgroup CPU quota, memory, library versions."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["git_info", "machine_id", "machine_info"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup (cpu.max or cfs quota), None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def _memory_bytes() -> int | None:
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


@cache
def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cgroup_cpu_quota": _cgroup_cpu_quota(),
        "memory_bytes": _memory_bytes(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "hostname_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:12],
    }


def machine_id(info: dict[str, Any] | None = None) -> str:
    """A stable folder name for a kind of machine: CPU model, cores and quota, not the host."""
    info = info or machine_info()
    model = re.sub(r"[^a-z0-9]+", "-", str(info["cpu_model"]).lower()).strip("-")[:40]
    quota = info.get("cgroup_cpu_quota")
    cores = f"{info['cores']}c" + (f"-q{quota:g}" if quota else "")
    return f"{model or 'cpu'}-{cores}"


def git_info(root: Path | None = None, watched: Iterable[str | Path] = ()) -> dict[str, Any]:
    """Commit and dirty flag of the working tree (None outside a git checkout): dirty where a
    tracked file changed, or where a ``watched`` file (the models timed, their data) is
    changed or untracked, so not in the commit the results name. Other untracked files (the
    results folder itself) leave it clean."""
    cwd = root or Path.cwd()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    dirty = bool(status) if status is not None else None
    if dirty is False:
        for path in dict.fromkeys(str(p) for p in watched):  # one at a time: some lie outside
            if git("status", "--porcelain", "--untracked-files=all", "--", path):
                dirty = True
                break
    return {"commit": commit, "dirty": dirty}
