"""What the task types that rewrite segments share (MergeRollupTask, RealtimeToOfflineSegmentsTask,
AlterTableTask): Pinot periods and time buckets, merge configs, and writing merged rows as new segments.

Reading a segment goes through :func:`local_sources` only, so a deep store that is not a local directory
(a remote one read through scratch copies) changes one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from taskplan.catalog.errors import SegmentConflictError
from taskplan.data.merging import AGGREGATION_TYPES, MERGE_TYPES, MergeSpec, write_segments
from taskplan.data.parquet import time_column_of
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentMetadata, SegmentStatus
from taskplan.models.table import Schema, TableConfig, parse_period_ms
from taskplan.plugin import TaskConfigError
from taskplan.tasktypes.common import int_config

MAX_NUM_RECORDS_PER_SEGMENT = "maxNumRecordsPerSegment"
DEFAULT_MAX_RECORDS = 5_000_000
AGGREGATION_SUFFIX = ".aggregationType"


def period_config(configs: Mapping[str, str], key: str, default: str | None = None) -> int | None:
    """A Pinot period (``1d``, ``6h``, ``30m``) in millis; None if unset and no default."""
    raw = configs.get(key)
    if raw is None or not raw.strip():
        if default is None:
            return None
        raw = default
    try:
        return parse_period_ms(raw)
    except ValueError as exc:
        raise TaskConfigError(f"{key}: {exc}") from None


def positive_period(configs: Mapping[str, str], key: str, default: str | None = None) -> int:
    value = period_config(configs, key, default)
    if value is None:
        raise TaskConfigError(f"{key} is required: a period such as 1d, 6h or 30m")
    if value <= 0:
        raise TaskConfigError(f"{key} must be a period longer than 0, got {configs.get(key)!r}")
    return value


def merge_type_config(configs: Mapping[str, str], key: str) -> str:
    value = (configs.get(key) or "concat").strip().lower()
    if value not in MERGE_TYPES:
        raise TaskConfigError(f"{key} must be one of {', '.join(MERGE_TYPES)}, got {configs.get(key)!r}")
    return value


def max_records_config(configs: Mapping[str, str], key: str) -> int:
    value = int_config(configs, key, DEFAULT_MAX_RECORDS, low=1)
    assert value is not None
    return value


def aggregations(configs: Mapping[str, str], schema: Schema) -> dict[str, str]:
    """``<metricColumn>.aggregationType`` (sum, min, max) per metric column; sum when unset."""
    metrics = {m.name for m in schema.metricFieldSpecs}
    found: dict[str, str] = {}
    for key, raw in configs.items():
        if not key.endswith(AGGREGATION_SUFFIX):
            continue
        column = key[: -len(AGGREGATION_SUFFIX)]
        if column not in metrics:
            raise TaskConfigError(f"{key}: {column!r} is not a metric column of schema {schema.schemaName}")
        value = raw.strip().lower()
        if value not in AGGREGATION_TYPES:
            raise TaskConfigError(f"{key} must be one of {', '.join(AGGREGATION_TYPES)}, got {raw!r}")
        found[column] = value
    return found


def epoch_time_column(table: TableConfig, schema: Schema) -> str:
    """The table's time column, which must hold numbers (epoch millis) for time buckets."""
    column, numeric = time_column_of(table, schema)
    if column is None or not numeric:
        raise TaskConfigError(
            f"table {table.tableName} needs a numeric time column (epoch millis) for time buckets"
        )
    return column


def bucket_of(time_ms: int, bucket_ms: int) -> int:
    return (time_ms // bucket_ms) * bucket_ms


@contextlib.contextmanager
def local_sources(manager: SegmentManager, segments: Sequence[SegmentMetadata]) -> Iterator[list[Path]]:
    """The segments' files on this machine, for DuckDB, while the context lasts (scratch copies of remote
    ones, deleted after)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(manager.local_copy(s)) for s in segments]


@dataclass(frozen=True)
class Written:
    """New segments written to staged files, not yet published."""

    segments: list[SegmentMetadata]
    staged: list[Path]

    def discard(self) -> None:
        for path in self.staged:
            path.unlink(missing_ok=True)

    @property
    def total_docs(self) -> int:
        return sum(s.total_docs for s in self.segments)


def write_merged(
    manager: SegmentManager,
    table: TableConfig,
    schema: Schema,
    sources: Sequence[SegmentMetadata],
    spec: MergeSpec,
    max_rows: int,
    name_of: str,
    *,
    source: str,
    custom: Mapping[str, str],
) -> Written:
    """Merge ``sources`` (segments of any table) into staged segment files of ``table``, named
    ``<name_of>_<i>``; their metadata carries ``custom``."""
    time_col, numeric = time_column_of(table, schema)
    spec = replace(spec, time_column=spec.time_column or time_col)
    with local_sources(manager, sources) as paths:
        files = write_segments(
            manager.duckdb_config,
            paths,
            schema,
            spec,
            lambda: manager.deep_store.staging_path(table.tableName),
            max_rows,
            numeric_time=numeric,
        )
    metas = [
        manager.metadata(
            table,
            f"{name_of}_{i}",
            SegmentStatus.DONE,
            stats,
            time_col=time_col,
            source=source,
            custom=custom,
        )
        for i, (_, stats) in enumerate(files)
    ]
    return Written(metas, [path for path, _ in files])


def swap_in(
    manager: SegmentManager,
    table: str,
    sources: Sequence[str],
    written: Written,
    lineage_id: str,
    owner: str,
) -> bool:
    """Replace ``sources`` by the written segments under one segment lineage entry (Pinot's way): start it
    (idempotent for the id), publish the files, end it. False when another replacement holds a source or
    this one ended already (a duplicate or a retry of finished work): nothing of ``written`` is kept."""
    try:  # whatever fails (the catalog out of reach too), the staged files leave this process's scratch
        try:
            manager.store.start_replace(
                table, sources, [s.segment_name for s in written.segments], lineage_id=lineage_id, owner=owner
            )
        except SegmentConflictError:
            return False
        for segment, staged in zip(written.segments, written.staged, strict=True):
            manager.deep_store.publish(staged, table, segment.file_name)
        # The sources' rows live on in the written segments: input files ingested into a source stay
        # ingested (into the first of them; into none when nothing was written).
        heir = written.segments[0].segment_name if written.segments else None
        manager.finish_replace(table, lineage_id, written.segments, successors=dict.fromkeys(sources, heir))
    finally:
        written.discard()
    return True
