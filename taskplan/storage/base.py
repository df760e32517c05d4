"""What every storage backend offers: a flat key space of immutable objects, written whole.

Keys are ``/``-separated and relative to the store's root (a local directory, or ``s3://bucket/prefix``).
An object is visible only once completely written (a rename on a local filesystem, one PUT or a completed
multipart upload on S3), so a reader never sees half of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """A store refused or failed an operation; the message is the store's own (never a secret)."""


class StorageNotFoundError(StorageError):
    """The object (or the bucket) does not exist."""


class StorageAccessError(StorageError):
    """Wrong credentials, or no permission: retrying does not help."""


class StorageUnavailableError(StorageError):
    """The store did not answer (refused, reset, timed out) or answered a server error (5xx, SlowDown), and
    the client's own retries ran out: the store is down or overloaded for now, and the same call may well
    succeed later. Nothing about the request is wrong, so callers retry it rather than fail a plan. (Also
    a download this machine's full disk cut short: the same holds for it.)"""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the store's root
    size: int
    last_modified: float  # epoch seconds
    etag: str | None = None  # S3's ETag (quotes dropped); None on a local filesystem

    def fingerprint(self) -> str:
        """What identifies this version of the object: its ETag and size on S3."""
        return f"{self.size}-{self.etag}" if self.etag else f"{self.size}"


class ObjectStore(Protocol):
    """A storage backend (see ``taskplan.storage.open_store``)."""

    @property
    def uri(self) -> str:
        """The root, as configured (a directory or ``s3://bucket/prefix``)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """Where the object lives on this machine's filesystem, if the backend is local (read it in place);
        None for a remote store (use :meth:`get_file`)."""
        ...

    def put_file(self, source: Path, key: str, *, move: bool = False) -> None:
        """Write ``source`` whole as ``key`` (replacing it). ``move``: the source may be consumed (renamed
        into place on a local filesystem; deleted after the upload otherwise)."""
        ...

    def get_file(self, key: str, dest: Path, *, if_match: str | None = None) -> ObjectInfo:
        """Copy the object to ``dest`` (a local file, replaced); its info. ``if_match``: only this ETag,
        else StorageError (the object changed since it was listed)."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's info, None if there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (at any depth), sorted by key."""
        ...

    def delete(self, key: str) -> bool:
        """Delete the object; False if there was none."""
        ...

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete these objects (in batches where the store has them); a missing one is no error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (a ``dir/``); how many were deleted."""
        ...

    def check(self) -> None:
        """Raise StorageError (with the store's message) if the store cannot be listed: an unreachable
        endpoint, wrong credentials, a missing bucket."""
        ...
