"""One storage interface for the deep store, ingestion input and export targets: the local filesystem or
the S3 API (AWS S3 and every S3-compatible store). ``open_store(uri, settings)`` picks the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskplan.settings import Settings
from taskplan.storage.base import (
    ObjectInfo,
    ObjectStore,
    StorageAccessError,
    StorageError,
    StorageNotFoundError,
    StorageUnavailableError,
)
from taskplan.storage.local import LocalStore
from taskplan.storage.uri import S3URI, BadURIError, check_under, is_s3, parse_s3

__all__ = [
    "S3URI",
    "BadURIError",
    "LocalStore",
    "ObjectInfo",
    "ObjectStore",
    "StorageAccessError",
    "StorageError",
    "StorageNotFoundError",
    "StorageUnavailableError",
    "check_under",
    "is_s3",
    "open_store",
    "parse_s3",
    "s3_options",
]


def s3_options(settings: Settings) -> dict[str, Any]:
    """obstore's S3 config from the properties (which load_settings fills from the AWS variables when
    unset). A region is required by the signature; us-east-1 when none is given, as the AWS CLI does."""
    options: dict[str, Any] = {"region": settings.s3_region or "us-east-1"}
    if settings.s3_access_key_id:
        options["access_key_id"] = settings.s3_access_key_id
    if settings.s3_secret_access_key is not None:
        options["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    if settings.s3_endpoint_url:
        options["endpoint"] = settings.s3_endpoint_url
    return options


_S3_STORES: dict[tuple[str, tuple[tuple[str, str], ...]], ObjectStore] = {}  # one HTTP client each


def open_store(uri: str, settings: Settings) -> ObjectStore:
    """The store rooted at ``uri``: ``s3://bucket/prefix`` or a local directory (a path). S3 stores are
    kept per root and connection settings, so their connections are reused."""
    if is_s3(uri):
        from taskplan.storage.s3 import S3Store  # obstore loads only where S3 is used

        root = parse_s3(uri)
        options = s3_options(settings)
        cache_key = (str(root), tuple(sorted((k, str(v)) for k, v in options.items())))
        store = _S3_STORES.get(cache_key)
        if store is None:
            store = _S3_STORES.setdefault(cache_key, S3Store(root, options))
        return store
    return LocalStore(Path(uri))
