"""Minion worker processes for tests that kill or stop them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from taskplan.catalog import Catalog
from tests.support.tasktypes import ALL_SPECS

REPO = Path(__file__).resolve().parents[2]


def start_minion(
    address: str, tag: str, log: Path, *, env: dict[str, str] | None = None, args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """A minion worker process serving ``tag`` (its data directory is the log's, unless ``env`` says)."""
    if "TASKPLAN_CATALOG_URL" not in (env or {}):
        # Its own catalog in the data directory, upgraded first as a deployment's migration job does:
        # a worker only checks the catalog's revision.
        catalog = Catalog(f"sqlite:///{(env or {}).get('TASKPLAN_DATADIR', log.parent)}/catalog.db")
        catalog.migrate()
        catalog.close()
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
