"""Leak hunting for the soak (``SOAK_TRACEMALLOC=<dir>``, bench/soak.py): every Python process of the stack
imports this at start-up (the soak puts this directory first on PYTHONPATH) and, with tracemalloc on
(PYTHONTRACEMALLOC), dumps a snapshot into ``<dir>`` every SOAK_TRACEMALLOC_SECONDS (default 60), named by
the process's role, its pid and the minute. Compare two with ``python -m bench.soak_leaks <dir>``."""

from __future__ import annotations

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


def _dump_every(directory: Path, seconds: float) -> None:
    started, n = time.monotonic(), 0
    while True:
        time.sleep(seconds)
        n += 1
        minute = (time.monotonic() - started) / 60
        path = directory / f"{_role()}-{os.getpid()}-{minute:06.2f}.snap"
        tracemalloc.take_snapshot().dump(str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").rename(path)


if os.environ.get("SOAK_TRACEMALLOC") and tracemalloc.is_tracing():
    _dir = Path(os.environ["SOAK_TRACEMALLOC"])
    _dir.mkdir(parents=True, exist_ok=True)
    _every = float(os.environ.get("SOAK_TRACEMALLOC_SECONDS", "60"))
    threading.Thread(target=_dump_every, args=(_dir, _every), daemon=True, name="soak-tracemalloc").start()
