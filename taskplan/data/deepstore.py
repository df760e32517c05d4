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
DROPPED_PREFIX = ".dropped-"  # a dropped table's directory, moved aside until it is deleted


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

    def move_aside(self, table: str) -> list[Path]:
        """Move the table's directory out of the way in one rename (to be deleted later); returns where
        it went (nothing if the table has no directory). A writer still staging a file there finds it
        gone when it publishes."""
        directory = self.table_dir(table)
        aside = self.root / f"{DROPPED_PREFIX}{uuid.uuid4().hex}"
        try:
            directory.rename(aside)
        except FileNotFoundError:
            return []
        return [aside]

    def move_back(self, aside: Path, table: str) -> None:
        """Undo :meth:`move_aside` (the drop did not happen); merges into a directory made meanwhile."""
        directory = self.table_dir(table)
        directory.mkdir(parents=True, exist_ok=True)
        for path in aside.iterdir():
            os.replace(path, directory / path.name)
        aside.rmdir()

    def delete_dropped(self, older_than_s: float) -> None:
        """Delete directories of dropped tables that a crash left behind."""
        for path in self.root.glob(f"{DROPPED_PREFIX}*"):
            if path.is_dir() and self.age_s(path.stat().st_mtime) >= older_than_s:
                shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def age_s(mtime: float) -> float:
        return time.time() - mtime
