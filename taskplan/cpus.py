"""How many CPUs this process may use: the container's CPU quota (cgroup), not the node's cores.

``os.cpu_count()`` inside a container limited to 2 CPUs on a 64-core node says 64; a minion sizing its data
subtasks by it would run 64 at once on 2 CPUs' worth of time. The quota is read from cgroup v2
(``<root>/cpu.max``: ``"<quota> <period>"`` or ``"max <period>"``) or cgroup v1
(``<root>/cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us``, also under ``cpu,cpuacct``; a quota of -1 is no
limit), rounded up, and capped by the CPUs this process may be scheduled on. Where the container has no
cgroup namespace of its own, its cgroup is a nested directory (named in /proc/self/cgroup): the tightest
quota of it and its ancestors counts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroups(proc_cgroup: Path) -> dict[str, str]:
    """This process's cgroup path per hierarchy, from /proc/self/cgroup: ``""`` for cgroup v2's unified
    one (``0::/path``), the controllers for v1 (``4:cpu,cpuacct:/path``)."""
    found: dict[str, str] = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            found[parts[1]] = parts[2]
    return found


def _with_ancestors(directory: Path, path: str) -> list[Path]:
    """``directory/path`` and each of its parents up to ``directory`` (a limit on a parent applies too)."""
    relative = Path(path.strip("/")) if path.strip("/") else Path()
    chain = [directory / relative, *(directory / parent for parent in relative.parents)]
    return list(dict.fromkeys(chain))


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPU quota in CPUs (1.5 for 150000/100000), or None when there is none or it cannot be read.
    The tightest quota of this process's cgroup and its ancestors: at the root of ``root`` inside a
    container with its own cgroup namespace, nested (``/kubepods.slice/.../cpu.max``) without one."""
    own = _own_cgroups(proc_cgroup)
    v2 = [_read(d / "cpu.max") for d in _with_ancestors(root, own.get("", "/"))]
    if any(text is not None for text in v2):
        quotas = [_ratio(*text.split()) for text in v2 if text is not None and len(text.split()) == 2]
        return min((q for q in quotas if q is not None), default=None)
    v1_path = next((path for names, path in own.items() if "cpu" in names.split(",")), "/")
    for hierarchy in (root / "cpu", root / "cpu,cpuacct", root):
        found = []
        for directory in _with_ancestors(hierarchy, v1_path):
            quota = _read(directory / "cpu.cfs_quota_us")
            period = _read(directory / "cpu.cfs_period_us")
            if quota is not None and period is not None:
                found.append(_ratio(quota, period))
        if found:
            return min((q for q in found if q is not None), default=None)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The CPUs this process may use: its scheduling affinity, capped by the cgroup quota (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root, proc_cgroup)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)
