"""What the data task types share: config parsing, the catalog and segments, allowed directories."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, NamedTuple

from taskplan.catalog import Catalog
from taskplan.cpus import available_cpus
from taskplan.data.segments import SegmentManager, deep_store_of
from taskplan.models.table import Schema, TableConfig
from taskplan.plugin import (
    BaseTaskGenerator,
    ExecutionContext,
    PluginContext,
    TaskConfigError,
)
from taskplan.settings import Settings
from taskplan.storage import (
    S3URI,
    BadURIError,
    ObjectStore,
    StorageError,
    StorageUnavailableError,
    check_under,
    is_s3,
    open_store,
    parse_s3,
)

TABLE_MAX_NUM_TASKS = "tableMaxNumTasks"
DEFAULT_TABLE_MAX_NUM_TASKS = 10
MAX_TABLE_MAX_NUM_TASKS = 10_000


def default_concurrency() -> int:
    """Subtasks of a data task type one minion runs at once: one per CPU of the container's quota (DuckDB
    is multithreaded too); taskplan.minion.maxConcurrentSubtasks or --max-concurrent-subtasks overrides it."""
    return available_cpus()


class DataTaskGenerator(BaseTaskGenerator):
    """Generators of the data task types: they chain batches, and a minion runs one subtask per CPU."""

    supports_orchestration: ClassVar[bool] = True

    def get_num_concurrent_tasks_per_instance(self, minion_tag: str) -> int:
        return default_concurrency()


def int_config(
    configs: Mapping[str, str], key: str, default: int | None, *, low: int = 0, high: int = 2**31 - 1
) -> int | None:
    raw = configs.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise TaskConfigError(f"{key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise TaskConfigError(f"{key} must be between {low} and {high}, got {value}")
    return value


def bool_config(configs: Mapping[str, str], key: str, default: bool = False) -> bool:
    raw = configs.get(key)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise TaskConfigError(f'{key} must be "true" or "false", got {raw!r}')
    return value == "true"


def table_max_num_tasks(configs: Mapping[str, str]) -> int:
    value = int_config(
        configs, TABLE_MAX_NUM_TASKS, DEFAULT_TABLE_MAX_NUM_TASKS, low=1, high=MAX_TABLE_MAX_NUM_TASKS
    )
    assert value is not None
    return value


def plugin_catalog(context: PluginContext | ExecutionContext | None) -> Catalog:
    assert context is not None, "the worker inits every generator with its context"
    return context.catalog


def segment_manager(context: PluginContext | ExecutionContext | None) -> SegmentManager:
    assert context is not None, "the worker inits every generator with its context"
    return SegmentManager(context.catalog, deep_store_of(context.settings), context.duckdb_config)


def require_schema(catalog: Catalog, table: TableConfig) -> Schema:
    schema = catalog.get_schema(table.raw_table_name)
    if schema is None:
        raise TaskConfigError(f"table {table.tableName} has no schema {table.raw_table_name}")
    return schema


class SubtaskScope(NamedTuple):
    """What a data subtask works with: the catalog, the segments, its table and that table's schema (as
    they are now, also if they changed since the batch was generated)."""

    catalog: Catalog
    manager: SegmentManager
    table: TableConfig
    schema: Schema


def subtask_scope(table_name: str, context: ExecutionContext) -> SubtaskScope:
    catalog = plugin_catalog(context)
    table = catalog.require_table(table_name)
    return SubtaskScope(catalog, segment_manager(context), table, require_schema(catalog, table))


def short_hash(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return digest[:length]


def _local_path_text(path_text: str, what: str) -> str:
    """A path, or a file:// URI percent-decoded to its path (Path.as_uri() encodes ' ', '%', 'ü', ...;
    the bytes are decoded as the file system names them, so every name round-trips)."""
    text = path_text.strip()
    if text.startswith("file://"):
        parts = urllib.parse.urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise TaskConfigError(
                f"{what} {path_text!r}: a file:// URI names a local path, not host {parts.netloc!r}"
            )
        if parts.query or parts.fragment or text.endswith(("?", "#")):
            raise TaskConfigError(
                f"{what} {path_text!r}: a file:// URI encodes '?' and '#' in a path as %3F and %23"
            )
        text = os.fsdecode(urllib.parse.unquote_to_bytes(parts.path))
    elif "://" in text:
        raise TaskConfigError(f"{what} {path_text!r}: only local paths and file:// URIs are supported")
    if "\x00" in text:
        raise TaskConfigError(f"{what} {path_text!r} contains a NUL byte, which no path may contain")
    return text


def resolve_under(path_text: str, roots: Sequence[Path], what: str) -> Path:
    """The real path of ``path_text`` (a path or file:// URI) if it lies under one of ``roots``."""
    text = _local_path_text(path_text, what)
    if not text:
        raise TaskConfigError(f"{what} is empty")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise TaskConfigError(f"{what} {path_text!r} must be an absolute path")
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise TaskConfigError(f"{what} {path_text!r} cannot be resolved: {exc.__class__.__name__}") from None
    for root in roots:
        if real == root or root in real.parents:
            return real
    allowed = ", ".join(str(r) for r in roots)
    raise TaskConfigError(f"{what} {path_text!r} is outside the allowed directories ({allowed})")


def resolve_s3_under(uri_text: str, roots: Sequence[str], what: str) -> S3URI:
    """The normalized ``s3://bucket/key`` if it lies under one of ``roots`` (same bucket, key under the
    root's key; no ``..`` or ``.`` segment anywhere)."""
    try:
        uri = parse_s3(uri_text)
        return check_under(uri, [parse_s3(r) for r in roots], what, uri_text)
    except BadURIError as exc:
        raise TaskConfigError(f"{what}: {exc}") from None


def resolve_location(text: str, roots: Sequence[Path], uri_roots: Sequence[str], what: str) -> Path | S3URI:
    """A local path (resolved under ``roots``) or an ``s3://`` URI (under ``uri_roots``)."""
    if is_s3(text):
        return resolve_s3_under(text, uri_roots, what)
    return resolve_under(text, roots, what)


def bucket_store(uri: S3URI, settings: Settings) -> ObjectStore:
    """The store of the URI's bucket (keys are the URI's keys)."""
    return open_store(f"s3://{uri.bucket}", settings)


def check_reachable(store: ObjectStore, what: str, shown: str, *, triggering: bool = True) -> None:
    """TaskConfigError with the store's own message if the store cannot be listed (an unreachable endpoint,
    wrong credentials, a missing bucket): refused when the task is triggered. Not ``triggering`` (a batch
    of a running plan is generated), a store that does not answer or answers 5xx is an outage to wait out:
    its StorageUnavailableError is raised as it is, and the generation retried."""
    try:
        store.check()
    except StorageError as exc:
        if isinstance(exc, StorageUnavailableError) and not triggering:
            raise
        raise TaskConfigError(f"{what} {shown}: {exc}") from None
