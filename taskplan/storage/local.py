"""The local filesystem backend: a directory; an object is a file, written under a staging name in its
directory and renamed into place (atomic on one filesystem)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from taskplan.storage.base import ObjectInfo, StorageError, StorageNotFoundError
from taskplan.storage.uri import normalize_key

STAGING_PREFIX = ".staging-"


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def uri(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / normalize_key(key, key) if key.strip("/") else self.root

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def put_file(self, source: Path, key: str, *, move: bool = False) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if move:
            try:
                os.replace(source, dest)
                return
            except OSError:  # another filesystem: copy below
                pass
        staged = dest.parent / f"{STAGING_PREFIX}{uuid.uuid4().hex}{dest.suffix}"
        try:
            shutil.copyfile(source, staged)
            os.replace(staged, dest)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        if move:
            source.unlink(missing_ok=True)

    def get_file(self, key: str, dest: Path, *, if_match: str | None = None) -> ObjectInfo:
        source = self._path(key)
        try:
            shutil.copyfile(source, dest)
        except FileNotFoundError:
            raise StorageNotFoundError(f"{source} does not exist") from None
        except OSError as exc:
            raise StorageError(f"{source}: {exc.strerror or exc}") from None
        return self._info(source, key)

    @staticmethod
    def _info(path: Path, key: str) -> ObjectInfo:
        stat = path.stat()
        return ObjectInfo(key=key, size=stat.st_size, last_modified=stat.st_mtime)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            return self._info(path, key) if path.is_file() else None
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        base = self._path(prefix.rsplit("/", 1)[0] if "/" in prefix else "")
        if not base.is_dir():
            return []
        found = []
        for dirpath, _, files in os.walk(base):
            for name in files:
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix) and not path.is_symlink():
                    try:
                        found.append(self._info(path, key))
                    except FileNotFoundError:  # deleted meanwhile
                        continue
        return sorted(found, key=lambda i: i.key)

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def delete_keys(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        doomed = self.list(prefix)
        for info in doomed:
            self.delete(info.key)
        if prefix.endswith("/"):
            shutil.rmtree(self._path(prefix), ignore_errors=True)
        return len(doomed)

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"{self.root} is not a directory")
