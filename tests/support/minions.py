"""Minion worker processes for tests that kill or stop them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.support.tasktypes import ALL_SPECS

REPO = Path(__file__).resolve().parents[2]


def start_minion(
    address: str, tag: str, log: Path, *, env: dict[str, str] | None = None, args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """A minion worker process serving ``tag`` (its data directory is the log's, unless ``env`` says)."""
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "TASKPLAN_PLUGINS": ALL_SPECS,
        "TASKPLAN_DATADIR": str(log.parent),
        **(env or {}),
    }
    command = [
        sys.executable,
        "worker.py",
        "--role",
        "minion",
        "--tag",
        tag,
        "--graceful-shutdown-seconds",
        "1",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*command, *args], cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
