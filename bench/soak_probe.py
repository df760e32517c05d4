"""What the soak (`bench/soak.py`) measures: the processes of a stack read from /proc, the catalog's size and
rows, and the verdict on whether memory and file descriptors stay flat."""

from __future__ import annotations

import os
import sqlite3
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A process of the stack is named by what its command line runs (`taskplan run` starts each of these once).
ROLES = (
    ("server start-dev", "temporal"),
    ("--role controller", "controller"),
    ("--role minion", "minion"),
    ("taskplan.cli api", "api"),
    ("taskplan.cli run", "supervisor"),
)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread ended meanwhile
    return found


def process_tree(root: int) -> dict[str, int]:
    """Every process of the tree under ``root`` (itself included) by role (a role seen twice: ``minion2``)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += _children(pid)
    named: dict[str, int] = {}
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        role = next((name for needle, name in ROLES if needle in command), f"pid{pid}")
        key, n = role, 2
        while key in named:
            key, n = f"{role}{n}", n + 1
        named[key] = pid
    return named


@dataclass(frozen=True)
class ProcessSample:
    rss_mb: float  # VmRSS
    hwm_mb: float  # VmHWM, the peak so far
    fds: int  # entries of /proc/<pid>/fd
    threads: int


def sample_process(pid: int) -> ProcessSample | None:
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None  # gone

    def mb(name: str) -> float:
        return int(fields[name].split()[0]) / 1024  # "12345 kB"

    return ProcessSample(mb("VmRSS"), mb("VmHWM"), fds, int(fields["Threads"]))


def sqlite_rows(path: Path) -> dict[str, int]:
    """Rows of every table of a SQLite file, read-only (the stack keeps writing it)."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        # The names come from sqlite_master itself, quoted as identifiers.
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


def file_mb(*paths: Path) -> float:
    """Size of a SQLite database with its WAL and shared-memory files, in MB."""
    total = 0
    for path in paths:
        for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if candidate.exists():
                total += candidate.stat().st_size
    return total / 1e6


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 with fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


@dataclass(frozen=True)
class Flatness:
    role: str
    rss_first_mb: float  # first sample of the second half
    rss_last_mb: float
    rss_peak_mb: float  # over the whole run
    rss_slope_mb_per_min: float  # over the second half
    rss_growth_mb: float  # the slope times the second half's span
    rss_allowed_mb: float
    fds_min: int  # over the second half
    fds_max: int
    fd_growth: float  # the fd slope times the second half's span
    flat: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# Growth over the second half that still counts as flat: allocator arenas, DuckDB's buffers and caches that
# fill up to a bound move RSS by a few MB; a leak grows on with every plan. Over the 15 minutes of a 30-minute
# run's second half, 4 MB is about 0.27 MB a minute (16 MB an hour).
RSS_ALLOWED_MB = 4.0
RSS_ALLOWED_FRACTION = 0.02
FD_ALLOWED = 2.0


def flatness(role: str, samples: Iterable[Mapping[str, Any]]) -> Flatness:
    """The verdict for one process over samples ``{"minute", "processes": {role: {rss_mb, fds, ...}}}``:
    flat when the fitted growth of RSS over the second half of the run stays within 4 MB or 2% of its
    mean (the larger), and that of the open fds within 2."""
    series = [(s["minute"], s["processes"][role]) for s in samples if role in s["processes"]]
    if not series:
        raise ValueError(f"no sample of {role}")
    end = series[-1][0]
    half = [(m, p) for m, p in series if m >= end / 2] or series[-1:]
    span = half[-1][0] - half[0][0]
    rss = [(m, float(p["rss_mb"])) for m, p in half]
    fds = [(m, float(p["fds"])) for m, p in half]
    rss_slope = slope(rss)
    allowed = max(RSS_ALLOWED_MB, RSS_ALLOWED_FRACTION * statistics.fmean(v for _, v in rss))
    fd_growth = slope(fds) * span
    return Flatness(
        role=role,
        rss_first_mb=rss[0][1],
        rss_last_mb=rss[-1][1],
        rss_peak_mb=max(float(p["rss_mb"]) for _, p in series),
        rss_slope_mb_per_min=rss_slope,
        rss_growth_mb=rss_slope * span,
        rss_allowed_mb=allowed,
        fds_min=int(min(v for _, v in fds)),
        fds_max=int(max(v for _, v in fds)),
        fd_growth=fd_growth,
        flat=rss_slope * span <= allowed and fd_growth <= FD_ALLOWED,
    )
