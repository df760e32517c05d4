"""The deep store: one folder (key prefix) per table, one Parquet object per segment, in any store of
``taskplan.storage`` (a local directory, the embedded default, or ``s3://bucket/prefix``).

An object becomes visible whole: on a local filesystem it is written under a staging name in the table's
directory and renamed into place; on S3 one PUT (or a completed multipart upload) makes it appear at once.
Either way it is written before the catalog commit that names it, so a reader never meets half a segment;
a crash leaves at most an object that no segment names, which the cleanup sweep deletes (it lists with
LastModified). Segment file names are deterministic, so a retried subtask rewrites the same key.

DuckDB reads and writes local files only (its httpfs extension is not bundled and nothing downloads at run
time): with a remote store, segments are streamed to and from this process's own scratch directory.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from taskplan.names import split_table_name_with_type
from taskplan.storage import LocalStore, ObjectStore

STAGING_PREFIX = ".staging-"
DROPPED_PREFIX = ".dropped-"  # a dropped table's local directory, moved aside until it is deleted


class DeepStore:
    def __init__(self, root: Path | ObjectStore, scratch: Path | None = None) -> None:
        self.store: ObjectStore = LocalStore(root) if isinstance(root, Path) else root
        local = self.store.local_path("")
        self.local_root = local.resolve() if local is not None else None
        self._scratch = scratch

    @property
    def root(self) -> Path:
        """The local directory (a local deep store only)."""
        if self.local_root is None:
            raise ValueError(f"the deep store {self.store.uri} is not a local directory")
        return self.local_root

    @property
    def is_local(self) -> bool:
        return self.local_root is not None

    @property
    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.gettempdir()) / "taskplan-scratch"
        return self._scratch

    @staticmethod
    def key(table: str, file_name: str) -> str:
        split_table_name_with_type(table)  # a valid table name: no separators, no ".."
        if "/" in file_name or "\\" in file_name or file_name in ("", ".", ".."):
            raise ValueError(f"bad segment file name {file_name!r}")
        return f"{table}/{file_name}"

    def table_dir(self, table: str) -> Path:
        split_table_name_with_type(table)
        return self.root / table

    def path(self, table: str, file_name: str) -> Path:
        """The segment file's local path (a local deep store only; see :meth:`local_copy`)."""
        if file_name.startswith("."):
            raise ValueError(f"bad segment file name {file_name!r}")
        return self.root / self.key(table, file_name)

    def work_dir(self, table: str) -> Path:
        """Where files of the table are staged: its directory (local), else this process's scratch."""
        split_table_name_with_type(table)
        directory = self.root / table if self.is_local else self.scratch / table
        for _ in range(10):
            try:
                directory.mkdir(parents=True, exist_ok=True)
                return directory
            except FileExistsError:
                # A drop moved the directory aside between mkdir and its is_dir check: make it again (a
                # writer that then publishes into it is stopped by the catalog, as before).
                continue
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def staging_path(self, table: str) -> Path:
        return self.work_dir(table) / f"{STAGING_PREFIX}{uuid.uuid4().hex}.parquet"

    def publish(self, staged: Path, table: str, file_name: str) -> None:
        """Write the staged file whole as the segment's object (the staged file is consumed, also when the
        upload fails: a remote store's staged file is in this process's scratch, which no sweep sees)."""
        if file_name.startswith("."):
            raise ValueError(f"bad segment file name {file_name!r}")
        try:
            self.store.put_file(staged, self.key(table, file_name), move=True)
        finally:
            if not self.is_local:
                staged.unlink(missing_ok=True)

    @contextlib.contextmanager
    def local_copy(self, table: str, file_name: str) -> Iterator[Path]:
        """The segment as a local file for DuckDB: in place on a local store, else a scratch copy deleted
        afterwards. StorageNotFoundError if there is none (remote)."""
        if self.is_local:
            yield self.path(table, file_name)
            return
        copy = self.work_dir(table) / f".copy-{uuid.uuid4().hex[:12]}-{file_name}"
        try:
            self.store.get_file(self.key(table, file_name), copy)
            yield copy
        finally:
            copy.unlink(missing_ok=True)

    def exists(self, table: str, file_name: str) -> bool:
        return self.store.exists(self.key(table, file_name))

    def delete(self, table: str, file_name: str) -> bool:
        return self.store.delete(self.key(table, file_name))

    def files(self, table: str) -> dict[str, float]:
        """File name -> LastModified (epoch seconds) of the table's objects, staging files included."""
        split_table_name_with_type(table)
        prefix = f"{table}/"
        found = {}
        for info in self.store.list(prefix):
            name = info.key[len(prefix) :]
            if name and "/" not in name:
                found[name] = info.last_modified
        return found

    def delete_file(self, table: str, name: str) -> None:
        """Delete one of :meth:`files` (staging files too)."""
        split_table_name_with_type(table)
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad file name {name!r}")
        self.store.delete(f"{table}/{name}")

    def delete_table(self, table: str) -> None:
        split_table_name_with_type(table)
        if self.is_local:
            shutil.rmtree(self.table_dir(table), ignore_errors=True)
        else:
            self.store.delete_prefix(f"{table}/")

    def move_aside(self, table: str) -> list[Path]:
        """Move the table's local directory out of the way in one rename (to be deleted later); returns
        where it went (nothing if the table has no directory, or the store is remote: there the objects are
        deleted after the drop commits, see SegmentManager.remove_table). A writer still staging a file
        there finds it gone when it publishes."""
        if not self.is_local:
            return []
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
            path.replace(directory / path.name)
        aside.rmdir()

    def delete_dropped(self, older_than_s: float) -> None:
        """Delete directories of dropped tables that a crash left behind (a local store)."""
        if not self.is_local:
            return
        for path in self.root.glob(f"{DROPPED_PREFIX}*"):
            if path.is_dir() and self.age_s(path.stat().st_mtime) >= older_than_s:
                shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def age_s(mtime: float) -> float:
        return time.time() - mtime
