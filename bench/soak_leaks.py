"""What grew between two tracemalloc snapshots of a soak's processes (``SOAK_TRACEMALLOC=<dir> python -m
bench.soak``, bench/soak_trace/sitecustomize.py): per process, the Python memory traced at each snapshot and
the allocation sites that grew most from the snapshot at the middle of the run to the last one.

    python -m bench.soak_leaks <dir> [--top 15] [--frames 6]
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections import defaultdict
from pathlib import Path

IGNORED = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    by_process: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(args.directory.glob("*.snap")):
        role, pid, _ = path.stem.split("-")
        by_process[f"{role}-{pid}"].append(path)
    for process, paths in by_process.items():
        snapshots = [tracemalloc.Snapshot.load(str(p)).filter_traces(IGNORED) for p in paths]
        totals = [sum(s.size for s in snap.statistics("filename")) / 1e6 for snap in snapshots]
        print(f"\n== {process}: traced MB per snapshot: {' '.join(f'{t:.1f}' for t in totals)}")
        if len(snapshots) < 2:
            continue
        mid = min(len(snapshots) // 2, len(snapshots) - 2)
        middle, last = snapshots[mid], snapshots[-1]
        print(f"   growth from {paths[mid].stem} to {paths[-1].stem}:")
        grown = sorted(last.compare_to(middle, "traceback"), key=lambda s: s.size_diff, reverse=True)
        for stat in grown[: args.top]:
            if stat.size_diff <= 0:
                break
            print(f"   {stat.size_diff / 1e3:+9.1f} KB {stat.count_diff:+7d} blocks")
            for line in stat.traceback.format(limit=args.frames, most_recent_first=True):
                print(f"        {line}")


if __name__ == "__main__":
    main()
