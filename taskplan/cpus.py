"""How many CPUs this process may use: the container's CPU quota (cgroup), not the node's cores.

``os.cpu_count()`` inside a container limited to 2 CPUs on a 64-core node says 64; a minion sizing its data
subtasks by it would run 64 at once on 2 CPUs' worth of time. The quota is read from cgroup v2
(``<root>/cpu.max``: ``"<quota> <period>"`` or ``"max <period>"``) or cgroup v1
(``<root>/cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us``, also under ``cpu,cpuacct``; a quota of -1 is no
limit), rounded up, and capped by the CPUs this process may be scheduled on.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (1.5 for 150000/100000), or None when there is none or it cannot be read."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            return _ratio(parts[0], parts[1])
        return None
    for directory in (root / "cpu", root / "cpu,cpuacct", root):
        quota = _read(directory / "cpu.cfs_quota_us")
        period = _read(directory / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may use: its scheduling affinity, capped by the cgroup quota (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)
