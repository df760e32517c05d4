"""Leak hunting for the soak (``SOAK_TRACEMALLOC=<dir>``, bench/soak.py): every Python process of the stack
imports this at start-up (the soak puts this directory first on PYTHONPATH). After
SOAK_TRACEMALLOC_START_SECONDS (default 120: start-up and warm-up run untraced, at full speed) it starts
tracemalloc, then every SOAK_TRACEMALLOC_SECONDS (default 60) runs a full garbage collection and dumps a
snapshot into ``<dir>``, named by the process's role, its pid and the minute. A snapshot holds what was
allocated since tracing began and is still alive: what grows from one snapshot to the next is what the
process keeps. Compare them with ``python -m bench.soak_leaks <dir>``."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def _role() -> str:
    argv = " ".join(sys.argv)
    roles = {"controller": "controller", "minion": "minion", " api": "api", " run": "supervisor"}
    return next((role for needle, role in roles.items() if needle in argv), "other")


def _trace(directory: Path, start_s: float, every_s: float) -> None:
    time.sleep(start_s)
    tracemalloc.start(int(os.environ.get("SOAK_TRACEMALLOC_FRAMES", "12")))
    started = time.monotonic()
    while True:
        time.sleep(every_s)
        minute = (time.monotonic() - started) / 60
        path = directory / f"{_role()}-{os.getpid()}-{minute:06.2f}.snap"
        gc.collect()  # garbage in reference cycles waits for a full collection: not what the process keeps
        tracemalloc.take_snapshot().dump(str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").rename(path)


if os.environ.get("SOAK_TRACEMALLOC"):
    _dir = Path(os.environ["SOAK_TRACEMALLOC"])
    _dir.mkdir(parents=True, exist_ok=True)
    _start = float(os.environ.get("SOAK_TRACEMALLOC_START_SECONDS", "120"))
    _every = float(os.environ.get("SOAK_TRACEMALLOC_SECONDS", "60"))
    threading.Thread(target=_trace, args=(_dir, _start, _every), daemon=True, name="soak-tracemalloc").start()
