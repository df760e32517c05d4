"""Segments end to end: build a Parquet segment from rows, upload it, replace segments atomically,
append to a REALTIME table's consuming segment, and sweep what a crash left behind.

Why one module past 400 lines: every write path here follows the same order of writes below (file, then
metadata, then retired files) against the same deep store and catalog; kept together so that order is read
and changed in one place.

Order of writes, so that a crash never loses data or leaks a file for good:
1. the Parquet file is written whole to the deep store (a staging name renamed into place on a local
   filesystem, one PUT on S3: see taskplan/data/deepstore.py);
2. the metadata row (with its lineage membership and processed-file record) is committed;
3. files of segments that a committed change retired are deleted.
A crash after 1 leaves a file with no metadata; after 2, retired segments whose files still exist. The
sweep (:meth:`SegmentManager.cleanup`) removes both, and reverts replacements left IN_PROGRESS too long.

Appends to a REALTIME table's consuming segment run concurrently (API threads, API processes): each writes
the segment's next version to a file of its own and swaps it in by compare-and-swap on the catalog row, and
one that lost the race deletes its file and tries again on the new version (:meth:`append_realtime`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from taskplan.catalog import Catalog, TableNotFoundError
from taskplan.catalog.errors import SegmentConflictError, TableDroppedError
from taskplan.clock import now_ms
from taskplan.data.csv_loader import load_csv
from taskplan.data.deepstore import DeepStore
from taskplan.data.deletions import DroppedTableDeleter
from taskplan.data.parquet import (
    DuckDBConfig,
    FileStats,
    column_types,
    copy_to_parquet,
    file_stats,
    quote,
    read_rows,
    sql_string,
    time_column_of,
    write_rows,
)
from taskplan.data.rows import RowStats
from taskplan.models.segment import LineageState, SegmentMetadata, SegmentStatus
from taskplan.models.table import Schema, TableConfig, parse_period_ms
from taskplan.settings import Settings
from taskplan.storage import StorageError, StorageNotFoundError, open_store

log = logging.getLogger(__name__)

FLUSH_ROWS = "realtime.segment.flush.threshold.rows"
FLUSH_TIME = "realtime.segment.flush.threshold.time"
DEFAULT_FLUSH_ROWS = 5_000_000
DEFAULT_FLUSH_TIME_MS = 6 * 3600 * 1000
# Tries of one append against those of other processes (a process's own appends take turns). Every round of
# a race has a winner, so an append loses only as often as appends of the other processes finish meanwhile.
MAX_APPEND_ATTEMPTS = 40
DROPPED_DIR_MAX_AGE_S = 3600.0  # a dropped table's directory a crash left behind is deleted after this


class StreamConfigError(ValueError):
    """A REALTIME table's flush threshold that is not a number or a period."""


class AppendConflictError(SegmentConflictError):
    """The consuming segment kept changing under an append: nothing of it was written."""


def segment_file_name(segment_name: str, version: int = 0) -> str:
    return f"{segment_name}.parquet" if version == 0 else f"{segment_name}.v{version}.parquet"


@dataclass
class CleanupReport:
    reverted: list[str] = field(default_factory=list)
    retired_segments: list[str] = field(default_factory=list)
    deleted_files: list[str] = field(default_factory=list)


class SegmentManager:
    def __init__(self, catalog: Catalog, deep_store: DeepStore, duckdb_config: DuckDBConfig) -> None:
        self.catalog = catalog
        self.store = catalog.segments
        self.deep_store = deep_store
        self.duckdb_config = duckdb_config  # how its segment files are written and read

    @classmethod
    def from_settings(cls, settings: Settings, catalog: Catalog) -> SegmentManager:
        """A worker's: its DuckDB connections have taskplan.duckdb.threadsPerSubtask threads each."""
        return cls(
            catalog,
            deep_store_of(settings),
            DuckDBConfig(settings.duckdb_threads, settings.duckdb_memory_limit),
        )

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
            write_rows(rows, schema, staged, self.duckdb_config)
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
        stats = file_stats(path, time_col, numeric, self.duckdb_config)
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
                self.duckdb_config,
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
        table_created_ms: int | None = None,
    ) -> SegmentMetadata:
        """Build and publish a segment, then record it (see the module docstring for the order)."""
        with self.dropped_meanwhile(table.tableName, table_created_ms):
            segment, staged = self.build(
                table, schema, rows, segment_name, status=status, source=source, custom=custom
            )
            self.publish(
                segment,
                staged,
                lineage_id=lineage_id,
                processed_file=processed_file,
                table_created_ms=table_created_ms,
            )
        return segment

    @contextlib.contextmanager
    def dropped_meanwhile(self, table: str, table_created_ms: int | None) -> Iterator[None]:
        """Files vanishing under a write for this incarnation of the table mean it was dropped (its
        directory moved away): TableDroppedError says so, instead of the file error. The drop moves the
        directory before it commits: the check waits for it."""
        try:
            yield
        except (OSError, duckdb.Error):
            if table_created_ms is None:
                raise
            if self.store.table_created_ms(table, settled=True) != table_created_ms:
                raise TableDroppedError(table) from None
            raise

    def publish(
        self,
        segment: SegmentMetadata,
        staged: Path,
        *,
        lineage_id: str | None = None,
        processed_file: tuple[str, str] | None = None,
        table_created_ms: int | None = None,
    ) -> None:
        """Move a staged segment file into place and record the segment. With ``table_created_ms`` (the
        incarnation of the table the segment was built for) a table dropped meanwhile raises
        TableDroppedError, and the file is deleted again: nothing outlives the drop."""
        self.deep_store.publish(staged, segment.table_name, segment.file_name)
        try:
            self.store.add_segment(
                segment,
                lineage_id=lineage_id,
                processed_file=processed_file,
                table_created_ms=table_created_ms,
            )
        except TableDroppedError:
            self.deep_store.delete(segment.table_name, segment.file_name)
            raise

    def local_copy(self, segment: SegmentMetadata) -> contextlib.AbstractContextManager[Path]:
        """The segment's file on this machine for DuckDB (in place, or a scratch copy of a remote one)."""
        return self.deep_store.local_copy(segment.table_name, segment.file_name)

    def read(self, segment: SegmentMetadata) -> list[dict[str, Any]]:
        with self.local_copy(segment) as path:
            return read_rows(path, self.duckdb_config)

    # ---------------------------------------------------------------- replacing and retiring

    def retire(self, table: str, names: Sequence[str]) -> list[str]:
        """Forget segments and delete their files (after the change that retired them committed)."""
        deleted = self.store.delete_segments(table, names)
        for segment in deleted:
            self.deep_store.delete(table, segment.file_name)
        return [s.segment_name for s in deleted]

    def finish_replace(
        self,
        table: str,
        lineage_id: str,
        uploaded: Sequence[SegmentMetadata] = (),
        successors: Mapping[str, str | None] | None = None,
    ) -> list[str]:
        """End a replacement (idempotent), recording its ``uploaded`` targets first, and retire what it
        replaced: one catalog transaction, then the retired segments' files are deleted. ``successors``:
        for a rewrite, which target holds each replaced segment's rows (see SegmentCatalog.swap)."""
        retired = self.store.swap(table, lineage_id, uploaded, successors)
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
        self,
        table: TableConfig,
        schema: Schema,
        rows: Iterable[Mapping[str, Any]],
        *,
        table_created_ms: int | None = None,
    ) -> SegmentMetadata:
        """Add rows to the consuming segment (creating one if needed); commit it when a threshold is hit.

        The rows are written once, to a staged file. Then, until it wins: read the consuming segment, write
        its next version (its rows, then these) to a new file, and swap that in by compare-and-swap on the
        catalog row; a writer that lost deletes its file and tries again on the winner's version. So every
        row is kept exactly once however many appends race, in this process or others (in this process they
        take turns, see ``append_lock``: a lost race costs a rewrite of the whole segment). After
        MAX_APPEND_ATTEMPTS lost rounds, AppendConflictError: nothing written. ``table_created_ms``: the
        incarnation of the table the rows are for (read now if not given); TableDroppedError if the table
        is dropped meanwhile, again with nothing written.
        """
        max_rows, max_age_ms = flush_thresholds(table)  # a bad threshold refuses the rows up front
        incarnation = table_created_ms
        if incarnation is None:
            incarnation = self.store.table_created_ms(table.tableName)
            if incarnation is None:
                raise TableNotFoundError(table.tableName)
        added = self.deep_store.staging_path(table.tableName)
        try:
            with self.dropped_meanwhile(table.tableName, incarnation):
                write_rows(rows, schema, added, self.duckdb_config)
                with self.store.append_lock(table.tableName):
                    segment = self._append(table, schema, added, incarnation, max_rows, max_age_ms)
        finally:
            added.unlink(missing_ok=True)
        return segment

    def _append(
        self,
        table: TableConfig,
        schema: Schema,
        added: Path,
        incarnation: int,
        max_rows: int,
        max_age_ms: int,
    ) -> SegmentMetadata:
        for attempt in range(MAX_APPEND_ATTEMPTS):
            segment = self._try_append(table, schema, added, incarnation, max_rows, max_age_ms)
            if segment is not None:
                return segment
            # Lost to an append of another process: back off a random while, so that racers spread out.
            time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
        raise AppendConflictError(
            f"the consuming segment of {table.tableName} changed under this append {MAX_APPEND_ATTEMPTS} "
            "times (too many concurrent appends): nothing was written, try again"
        )

    def _try_append(
        self,
        table: TableConfig,
        schema: Schema,
        added: Path,
        incarnation: int,
        max_rows: int,
        max_age_ms: int,
    ) -> SegmentMetadata | None:
        """One round of :meth:`append_realtime`: the swapped-in segment, or None if another append won."""
        name = table.tableName
        consuming = self.store.consuming_segment(name)
        if consuming is None:
            segment_name, created, version = self._next_consuming_name(table), now_ms(), 0
        else:
            segment_name, created = consuming.segment_name, consuming.created_ms
            version = _version_of(consuming.file_name) + 1
        time_col, numeric = time_column_of(table, schema)
        staged = self.deep_store.staging_path(name)
        try:
            with contextlib.ExitStack() as copies:
                sources = [added]
                if consuming is not None:
                    sources.insert(0, copies.enter_context(self.local_copy(consuming)))
                stats = _concatenate(sources, schema, staged, time_col, numeric, self.duckdb_config)
        except (duckdb.Error, StorageNotFoundError):
            staged.unlink(missing_ok=True)
            if consuming is not None and not self.deep_store.exists(name, consuming.file_name):
                now_consuming = self.store.consuming_segment(name)
                if now_consuming is None or now_consuming.file_name != consuming.file_name:
                    return None  # replaced (and its file deleted) by an append that won meanwhile
            raise
        stamp = now_ms()
        due = stats.total_docs >= max_rows or stamp - created >= max_age_ms
        segment = replace(
            self.metadata(
                table,
                segment_name,
                SegmentStatus.DONE if due else SegmentStatus.IN_PROGRESS,
                stats,
                time_col=time_col,
                source="ingestFromFile",
            ),
            created_ms=created,
            committed_ms=stamp if due else None,
            # A name of its own (not just the version): racing appends never write the same file.
            file_name=f"{segment_name}.v{version}.{uuid.uuid4().hex[:12]}.parquet",
        )
        self.deep_store.publish(staged, name, segment.file_name)
        try:
            swapped = self.store.put_consuming(
                segment,
                replaces=None if consuming is None else consuming.file_name,
                table_created_ms=incarnation,
            )
        except TableDroppedError:
            self.deep_store.delete(name, segment.file_name)
            raise
        if not swapped:
            self.deep_store.delete(name, segment.file_name)
            return None
        if consuming is not None:
            self.deep_store.delete(name, consuming.file_name)
        if due:
            log.info("committed segment %s of %s (%d rows)", segment_name, name, segment.total_docs)
        return segment

    def _next_consuming_name(self, table: TableConfig) -> str:
        """Pinot's LLC segment name, ``<raw>__<partition>__<sequence>__<yyyyMMdd'T'HHmm'Z'>``."""
        raw = table.raw_table_name
        existing = self.store.all_segments(table.tableName)
        sequences = [len(existing) - 1]
        for s in existing:
            parts = s.segment_name.rsplit("__", 3)
            if len(parts) == 4 and parts[0] == raw and parts[2].isdigit():
                sequences.append(int(parts[2]))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
        return f"{raw}__0__{max(sequences) + 1}__{stamp}"

    def commit_due_segments(self, table: TableConfig) -> list[str]:
        """Commit (DONE) the consuming segment if it reached the flush age (an append commits it when it
        reaches the flush row count); not if an append changed it meanwhile (the next run looks again)."""
        consuming = self.store.consuming_segment(table.tableName)
        if consuming is None:
            return []
        max_rows, max_age_ms = flush_thresholds(table)
        stamp = now_ms()
        if consuming.total_docs < max_rows and stamp - consuming.created_ms < max_age_ms:
            return []
        committed = replace(consuming, status=SegmentStatus.DONE, committed_ms=stamp)
        if not self.store.commit_consuming(committed):
            return []
        log.info(
            "committed segment %s of %s (%d rows)",
            consuming.segment_name,
            table.tableName,
            consuming.total_docs,
        )
        return [consuming.segment_name]

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
                self.deep_store.delete_file(table, name)
                report.deleted_files.append(name)
        return report

    def drop_table(self, table: str) -> None:
        """Delete the table's data (its segments, lineage, records and files); the table stays."""
        self.store.delete_table_data(table)
        self.deep_store.delete_table(table)

    def remove_table(self, table: str) -> None:
        """Drop the table: its config and data go in one catalog transaction, under the table's write lock,
        and its deep-store directory is moved aside inside it. So a writer racing the drop either recorded
        its segment before (and the drop removes it) or finds the table gone and records nothing, and a
        table created again under the name starts with an empty directory.
        Raises TableNotFoundError.

        The same transaction records what is to be deleted (taskplan/data/deletions.py): the moved-aside
        directory (local), or the keys of the segments' objects (a remote store cannot move a prefix in
        one step: its objects are deleted once the drop has committed; a writer racing it either recorded
        its segment before, so its key is recorded, or fails to record it and deletes its own object, see
        :meth:`publish`). The objects are deleted right after the commit and the record cleared; the store
        failing then does not undo the drop, which has happened: the record stays, the store's message is
        logged, and the segment upkeep deletes them once the store answers."""
        deletion_id = self.drop_in_catalog(table)
        if deletion_id is not None:
            pending = self.catalog.deletions.get(deletion_id)
            if pending is not None:
                try:
                    DroppedTableDeleter(self.catalog, self.deep_store).run(pending)
                except (StorageError, OSError) as exc:
                    log.warning(
                        "table %s dropped, but its objects under %s/%s/ were not deleted yet (the segment "
                        "upkeep retries): %s",
                        table, self.deep_store.store.uri, table, exc,
                    )  # fmt: skip
        self.deep_store.delete_dropped(older_than_s=DROPPED_DIR_MAX_AGE_S)

    def drop_in_catalog(self, table: str) -> str | None:
        """The drop's catalog transaction (the first step of :meth:`remove_table`, all that a process
        dying right after its commit did); the id of the pending deletion it recorded."""
        moved: list[Path] = []
        root = self.deep_store.local_root

        def deletion(segments: list[SegmentMetadata]) -> tuple[str, list[str]] | None:
            if root is not None:  # the moved-aside directory, a name of this drop's own
                keys = [f"{p.relative_to(root).as_posix()}/" for p in moved]
                return (self.deep_store.store.uri, keys) if keys else None
            return self.deep_store.store.uri, [DeepStore.key(table, s.file_name) for s in segments]

        try:
            dropped = self.store.drop_table(
                table, lambda: moved.extend(self.deep_store.move_aside(table)), deletion=deletion
            )
        except BaseException:
            for path in moved:  # the transaction rolled back: the files are the table's again
                self.deep_store.move_back(path, table)
            raise
        return dropped.deletion_id


def deep_store_of(settings: Settings) -> DeepStore:
    """The deep store the settings name (taskplan.deepStore.dir), staging in this process's scratch."""
    return DeepStore(open_store(settings.deep_store_uri, settings), settings.scratch_dir)


def flush_thresholds(table: TableConfig) -> tuple[int, int]:
    """The REALTIME table's flush row count and age (ms); StreamConfigError naming a bad one."""
    configs = table.stream_configs
    rows_value = str(configs.get(FLUSH_ROWS, DEFAULT_FLUSH_ROWS)).strip()
    if not (rows_value.isascii() and rows_value.isdigit()):
        raise StreamConfigError(
            f"streamConfigs {FLUSH_ROWS} of {table.tableName} is {rows_value[:100]!r}, not a whole number"
        )
    age_ms = DEFAULT_FLUSH_TIME_MS
    if FLUSH_TIME in configs:
        try:
            age_ms = parse_period_ms(str(configs[FLUSH_TIME]))
        except ValueError as exc:
            raise StreamConfigError(f"streamConfigs {FLUSH_TIME} of {table.tableName}: {exc}") from None
    return int(rows_value), age_ms


def _concatenate(
    sources: Sequence[Path],
    schema: Schema,
    dest: Path,
    time_col: str | None,
    numeric_time: bool,
    duckdb_config: DuckDBConfig,
) -> FileStats:
    """Write the rows of ``sources`` (segment files), in order, to ``dest`` in the schema's columns: DuckDB
    streams them, so no row is held in Python. A column a file lacks (the schema gained it) is null."""
    types = column_types(schema)
    columns = ", ".join(f"CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in types.items())
    files = "[" + ", ".join(sql_string(str(p)) for p in sources) + "]"
    with duckdb_config.connect(*{p.parent for p in sources}, dest.parent) as conn:
        query = f"SELECT {columns} FROM read_parquet({files}, union_by_name = true)"
        return copy_to_parquet(conn, query, dest, time_col, numeric_time)


def _version_of(file_name: str) -> int:
    """The version in ``<segment>.v<version>[.<token>].parquet`` (0 for ``<segment>.parquet``)."""
    match = re.search(r"\.v(\d+)(?:\.[0-9a-f]+)?\.parquet$", file_name)
    return int(match.group(1)) if match else 0
