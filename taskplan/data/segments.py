"""Segments end to end: build a Parquet segment from rows, upload it, replace segments atomically,
append to a REALTIME table's consuming segment, and sweep what a crash left behind.

Order of writes, so that a crash never loses data or leaks a file for good:
1. the Parquet file is written under a staging name and renamed into place;
2. the metadata row (with its lineage membership and processed-file record) is committed;
3. files of segments that a committed change retired are deleted.
A crash after 1 leaves a file with no metadata; after 2, retired segments whose files still exist. The
sweep (:meth:`SegmentManager.cleanup`) removes both, and reverts replacements left IN_PROGRESS too long.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskplan.catalog import Catalog
from taskplan.catalog.segments import LineageState, SegmentMetadata, SegmentStatus
from taskplan.data.csv_loader import load_csv
from taskplan.data.deepstore import DeepStore
from taskplan.data.parquet import FileStats, file_stats, read_rows, time_column_of, write_rows
from taskplan.data.rows import RowStats
from taskplan.models.table import Schema, TableConfig
from taskplan.settings import Settings

log = logging.getLogger(__name__)

FLUSH_ROWS = "realtime.segment.flush.threshold.rows"
FLUSH_TIME = "realtime.segment.flush.threshold.time"
DEFAULT_FLUSH_ROWS = 5_000_000
DEFAULT_FLUSH_TIME_MS = 6 * 3600 * 1000
_PERIOD = re.compile(r"^(\d+)\s*(ms|s|m|h|d)$", re.IGNORECASE)
_PERIOD_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_period_ms(value: str) -> int:
    """Pinot periods: ``6h``, ``30m``, ``10s``, ``1d``, ``500ms``."""
    match = _PERIOD.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a period such as 6h, 30m, 10s, 1d")
    return int(match.group(1)) * _PERIOD_MS[match.group(2).lower()]


def now_ms() -> int:
    return int(time.time() * 1000)


def segment_file_name(segment_name: str, version: int = 0) -> str:
    return f"{segment_name}.parquet" if version == 0 else f"{segment_name}.v{version}.parquet"


@dataclass
class CleanupReport:
    reverted: list[str] = field(default_factory=list)
    retired_segments: list[str] = field(default_factory=list)
    deleted_files: list[str] = field(default_factory=list)


class SegmentManager:
    def __init__(self, catalog: Catalog, deep_store: DeepStore) -> None:
        self.catalog = catalog
        self.store = catalog.segments
        self.deep_store = deep_store

    @classmethod
    def from_settings(cls, settings: Settings, catalog: Catalog) -> SegmentManager:
        return cls(catalog, DeepStore(settings.resolved_deep_store_dir))

    # ---------------------------------------------------------------- building and uploading

    def build(
        self,
        table: TableConfig,
        schema: Schema,
        rows: Iterable[Mapping[str, Any]],
        segment_name: str,
        *,
        status: SegmentStatus = SegmentStatus.DONE,
        source: str | None = None,
        custom: Mapping[str, str] | None = None,
        version: int = 0,
    ) -> tuple[SegmentMetadata, Path]:
        """Write rows to a staged Parquet file; returns the segment's metadata and the staged path."""
        staged = self.deep_store.staging_path(table.tableName)
        try:
            write_rows(rows, schema, staged)
            return self.describe_file(
                table, schema, staged, segment_name, status, source, custom, version
            ), staged
        except BaseException:
            staged.unlink(missing_ok=True)
            raise

    def describe_file(
        self,
        table: TableConfig,
        schema: Schema,
        path: Path,
        segment_name: str,
        status: SegmentStatus,
        source: str | None,
        custom: Mapping[str, str] | None,
        version: int,
    ) -> SegmentMetadata:
        time_col, numeric = time_column_of(table, schema)
        stats = file_stats(path, time_col, numeric)
        return self.metadata(
            table,
            segment_name,
            status,
            stats,
            time_col=time_col,
            source=source,
            custom=custom,
            version=version,
        )

    def metadata(
        self,
        table: TableConfig,
        segment_name: str,
        status: SegmentStatus,
        stats: FileStats,
        *,
        time_col: str | None,
        source: str | None = None,
        custom: Mapping[str, str] | None = None,
        version: int = 0,
    ) -> SegmentMetadata:
        """Metadata of a segment file whose stats are known."""
        stamp = now_ms()
        return SegmentMetadata(
            table_name=table.tableName,
            segment_name=segment_name,
            status=status,
            total_docs=stats.total_docs,
            size_bytes=stats.size_bytes,
            crc=stats.crc,
            file_name=segment_file_name(segment_name, version),
            created_ms=stamp,
            time_column=time_col,
            start_time=stats.start_time,
            end_time=stats.end_time,
            committed_ms=stamp if status is SegmentStatus.DONE else None,
            source=source,
            custom=dict(custom or {}),
        )

    def build_from_csv(
        self,
        table: TableConfig,
        schema: Schema,
        path: Path,
        segment_name: str,
        *,
        source: str | None = None,
        max_parse_exceptions: int | None = None,
    ) -> tuple[SegmentMetadata, Path, RowStats]:
        """A segment straight from a CSV file (DuckDB all the way); the staged path to publish."""
        staged = self.deep_store.staging_path(table.tableName)
        time_col, numeric = time_column_of(table, schema)
        try:
            stats, written = load_csv(
                path,
                schema,
                staged,
                max_parse_exceptions=max_parse_exceptions,
                source_name=source or "",
                time_col=time_col,
                numeric_time=numeric,
            )
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        segment = self.metadata(
            table, segment_name, SegmentStatus.DONE, written, time_col=time_col, source=source
        )
        return segment, staged, stats

    def upload(
        self,
        table: TableConfig,
        schema: Schema,
        rows: Iterable[Mapping[str, Any]],
        segment_name: str,
        *,
        lineage_id: str | None = None,
        processed_file: tuple[str, str] | None = None,
        status: SegmentStatus = SegmentStatus.DONE,
        source: str | None = None,
        custom: Mapping[str, str] | None = None,
    ) -> SegmentMetadata:
        """Build and publish a segment, then record it (see the module docstring for the order)."""
        segment, staged = self.build(
            table, schema, rows, segment_name, status=status, source=source, custom=custom
        )
        self.deep_store.publish(staged, table.tableName, segment.file_name)
        self.store.add_segment(segment, lineage_id=lineage_id, processed_file=processed_file)
        return segment

    def path_of(self, segment: SegmentMetadata) -> Path:
        return self.deep_store.path(segment.table_name, segment.file_name)

    def read(self, segment: SegmentMetadata) -> list[dict[str, Any]]:
        return read_rows(self.path_of(segment))

    # ---------------------------------------------------------------- replacing and retiring

    def retire(self, table: str, names: Sequence[str]) -> list[str]:
        """Forget segments and delete their files (after the change that retired them committed)."""
        deleted = self.store.delete_segments(table, names)
        for segment in deleted:
            self.deep_store.delete(table, segment.file_name)
        return [s.segment_name for s in deleted]

    def finish_replace(
        self, table: str, lineage_id: str, uploaded: Sequence[SegmentMetadata] = ()
    ) -> list[str]:
        """End a replacement (idempotent), recording its ``uploaded`` targets first, and retire what it
        replaced: one catalog transaction, then the retired segments' files are deleted."""
        retired = self.store.swap(table, lineage_id, uploaded)
        for segment in retired:
            self.deep_store.delete(table, segment.file_name)
        return [s.segment_name for s in retired]

    def abandon_replace(self, table: str, lineage_id: str) -> list[str]:
        """Revert a replacement (idempotent) and delete the segments it had uploaded."""
        uploaded = self.store.revert_replace(table, lineage_id)
        return self.retire(table, uploaded)

    def retire_unpublished(self, table: str, segment_name: str, lineage_id: str) -> None:
        """Drop a target of an IN_PROGRESS replacement before the swap (it will not be published)."""
        self.store.withdraw_from_lineage(table, lineage_id, segment_name)
        self.retire(table, [segment_name])

    def replace(self, table: str, segments_from: Sequence[str], new: Sequence[SegmentMetadata]) -> None:
        """Replace published-but-unrecorded segments ``new`` for ``segments_from`` in one atomic step."""
        lineage_id = self.store.start_replace(table, segments_from, [s.segment_name for s in new])
        try:
            self.finish_replace(table, lineage_id, new)
        except BaseException:
            self.abandon_replace(table, lineage_id)
            raise

    # ---------------------------------------------------------------- REALTIME: the consuming segment

    def append_realtime(
        self, table: TableConfig, schema: Schema, rows: Sequence[Mapping[str, Any]]
    ) -> SegmentMetadata:
        """Add rows to the consuming segment (creating one if needed); commit it when a threshold is hit."""
        raw = table.raw_table_name
        consuming = self._consuming(table.tableName)
        existing: list[dict[str, Any]] = []
        version = 0
        if consuming is not None:
            existing = self.read(consuming)
            version = _version_of(consuming.file_name) + 1
            name = consuming.segment_name
            created = consuming.created_ms
        else:
            sequence = len(self.store.all_segments(table.tableName))
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
            name = f"{raw}__0__{sequence}__{stamp}"
            created = now_ms()
        segment, staged = self.build(
            table,
            schema,
            [*existing, *rows],
            name,
            status=SegmentStatus.IN_PROGRESS,
            source="ingestFromFile",
            version=version,
        )
        segment = replace(segment, created_ms=created)
        self.deep_store.publish(staged, table.tableName, segment.file_name)
        if consuming is None:
            self.store.add_segment(segment)
        else:
            self.store.update_segment(segment)
            self.deep_store.delete(table.tableName, consuming.file_name)
        return self.commit_if_due(table, segment) or segment

    def _consuming(self, table: str) -> SegmentMetadata | None:
        return next(
            (s for s in self.store.all_segments(table) if s.status is SegmentStatus.IN_PROGRESS), None
        )

    def commit_if_due(self, table: TableConfig, segment: SegmentMetadata) -> SegmentMetadata | None:
        """Commit (DONE) a consuming segment that reached the flush row count or age; None if not due."""
        configs = table.stream_configs
        max_rows = int(configs.get(FLUSH_ROWS, DEFAULT_FLUSH_ROWS))
        max_age = parse_period_ms(configs[FLUSH_TIME]) if FLUSH_TIME in configs else DEFAULT_FLUSH_TIME_MS
        stamp = now_ms()
        if segment.total_docs < max_rows and stamp - segment.created_ms < max_age:
            return None
        committed = replace(segment, status=SegmentStatus.DONE, committed_ms=stamp)
        self.store.update_segment(committed)
        log.info(
            "committed segment %s of %s (%d rows)", segment.segment_name, table.tableName, segment.total_docs
        )
        return committed

    def commit_due_segments(self, table: TableConfig) -> list[str]:
        consuming = self._consuming(table.tableName)
        if consuming is None:
            return []
        committed = self.commit_if_due(table, consuming)
        return [] if committed is None else [committed.segment_name]

    # ---------------------------------------------------------------- the sweep

    def cleanup(
        self, table: str, *, stale_after_ms: int = 3_600_000, grace_s: float = 600.0
    ) -> CleanupReport:
        """Revert replacements IN_PROGRESS for longer than ``stale_after_ms``, retire what completed or
        reverted replacements left, and delete files that no segment row names (older than ``grace_s``)."""
        report = CleanupReport()
        stamp = now_ms()
        for entry in self.store.lineage(table):
            old = stamp - entry.updated_ms > stale_after_ms
            if entry.state is LineageState.IN_PROGRESS:
                if old:
                    report.retired_segments += self.abandon_replace(table, entry.lineage_id)
                    report.reverted.append(entry.lineage_id)
                continue
            leftovers = entry.segments_from if entry.state is LineageState.COMPLETED else entry.segments_to
            report.retired_segments += self.retire(table, leftovers)
            if old:  # kept a while so that a retried end or revert still finds it
                self.store.forget_lineage(table, entry.lineage_id)
        known = {s.file_name for s in self.store.all_segments(table)}
        for name, mtime in self.deep_store.files(table).items():
            if name not in known and DeepStore.age_s(mtime) >= grace_s:
                (self.deep_store.table_dir(table) / name).unlink(missing_ok=True)
                report.deleted_files.append(name)
        return report

    def drop_table(self, table: str) -> None:
        self.store.delete_table_data(table)
        self.deep_store.delete_table(table)


def _version_of(file_name: str) -> int:
    match = re.search(r"\.v(\d+)\.parquet$", file_name)
    return int(match.group(1)) if match else 0
