"""The deep store: one directory per table, one Parquet file per segment.

Files are written under a staging name and renamed into place (atomic on one filesystem), so a reader
never sees half a file; a crash leaves at most a staging file, which the cleanup sweep removes.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from taskplan.names import split_table_name_with_type

STAGING_PREFIX = ".staging-"


class DeepStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def table_dir(self, table: str) -> Path:
        split_table_name_with_type(table)  # a valid table name: no separators, no ".."
        return self.root / table

    def path(self, table: str, file_name: str) -> Path:
        if "/" in file_name or "\\" in file_name or file_name.startswith("."):
            raise ValueError(f"bad segment file name {file_name!r}")
        return self.table_dir(table) / file_name

    def staging_path(self, table: str) -> Path:
        directory = self.table_dir(table)
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{STAGING_PREFIX}{uuid.uuid4().hex}.parquet"

    def publish(self, staged: Path, table: str, file_name: str) -> Path:
        final = self.path(table, file_name)
        os.replace(staged, final)
        return final

    def delete(self, table: str, file_name: str) -> bool:
        try:
            self.path(table, file_name).unlink()
        except FileNotFoundError:
            return False
        return True

    def files(self, table: str) -> dict[str, float]:
        """File name -> modification time, staging files included."""
        directory = self.table_dir(table)
        if not directory.is_dir():
            return {}
        return {p.name: p.stat().st_mtime for p in directory.iterdir() if p.is_file()}

    def delete_table(self, table: str) -> None:
        shutil.rmtree(self.table_dir(table), ignore_errors=True)

    @staticmethod
    def age_s(mtime: float) -> float:
        return time.time() - mtime
