"""DataExportTask: export a REALTIME table's completed segments to an external target, each exactly once.

Task configs: ``externalTable.target``, either a directory (a path or ``file://`` URI under
``taskplan.export.allowedRoots``) or an ``s3://bucket/prefix`` (under an ``s3://`` entry of the same
setting) that receives one Parquet file per segment, or a PostgreSQL URL
(``postgresql://user@host:5432/db``) whose table ``externalTable.tableName`` (default: the raw table name)
receives the rows; ``bufferTimePeriod`` (default ``2d``, Pinot's): only segments committed at least that long
ago are exported; ``tableMaxNumTasks``: segments per batch. One subtask per segment. Segments committed while
the plan runs flow into later batches until none is left.

Exactly once per target: a directory target gets ``<table>/<segment>.parquet`` written under a staging name
and renamed, an S3 target the same key in one PUT (a retry rewrites the same file or object, whole, before
the export is recorded); a PostgreSQL target gets the rows and a row in
``taskplan_exported_segments`` in one transaction, so a retried or duplicated subtask inserts nothing. The
catalog then records the export, and the generator never picks the segment again for that target.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psycopg
from psycopg import sql

from taskplan.clock import now_ms
from taskplan.data.parquet import DuckDBConfig, sql_string
from taskplan.data.pg_copy import copy_parquet, pg_column
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentMetadata, SegmentStatus
from taskplan.models.table import Schema, TableConfig, parse_period_ms
from taskplan.plugin import (
    BaseTaskExecutor,
    BatchGeneration,
    BatchRequest,
    ExecutionContext,
    FatalTaskError,
    PinotTaskConfig,
    SubtaskResult,
    TaskConfigError,
    TaskTypePlugin,
)
from taskplan.settings import Settings
from taskplan.storage import StorageError, StorageUnavailableError, is_s3
from taskplan.tasktypes.common import (
    DataTaskGenerator,
    bucket_store,
    check_reachable,
    plugin_catalog,
    resolve_s3_under,
    resolve_under,
    subtask_scope,
    table_max_num_tasks,
)

TARGET = "externalTable.target"
TARGET_TABLE = "externalTable.tableName"
BUFFER_TIME_PERIOD = "bufferTimePeriod"
DEFAULT_BUFFER = "2d"
SEGMENT_NAME = "segmentName"
EXPORT_LOG_TABLE = "taskplan_exported_segments"


@dataclass(frozen=True)
class ExportTarget:
    kind: str  # "dir", "s3" or "postgresql"
    location: str  # directory, or connection URL
    table: str | None = None

    @property
    def key(self) -> str:
        """How the catalog names the target in its export records."""
        return f"{self.location}#{self.table}" if self.kind == "postgresql" else self.location


def parse_target(table: TableConfig, configs: Mapping[str, str], settings: Settings) -> ExportTarget:
    raw = (configs.get(TARGET) or "").strip()
    if not raw:
        raise TaskConfigError(f"{TARGET} is required: a directory, an s3:// prefix or a postgresql:// URL")
    if is_s3(raw):
        return ExportTarget("s3", str(resolve_s3_under(raw, settings.allowed_export_uris, TARGET)))
    if raw.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        url = raw.replace("postgresql+psycopg://", "postgresql://", 1)
        name = (configs.get(TARGET_TABLE) or table.raw_table_name).strip()
        if not name.replace("_", "").isalnum():
            raise TaskConfigError(f"{TARGET_TABLE} {name!r} must be letters, digits and underscores")
        return ExportTarget("postgresql", url, name)
    return ExportTarget("dir", str(resolve_under(raw, settings.allowed_export_roots, TARGET)))


def buffer_ms(configs: Mapping[str, str]) -> int:
    raw = configs.get(BUFFER_TIME_PERIOD) or DEFAULT_BUFFER
    try:
        return parse_period_ms(raw)
    except ValueError as exc:
        raise TaskConfigError(f"{BUFFER_TIME_PERIOD}: {exc}") from None


class DataExportTaskGenerator(DataTaskGenerator):
    task_type: ClassVar[str] = "DataExportTask"

    def _settings(self) -> Settings:
        assert self.context is not None
        return self.context.settings

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        self._validate(table_config, task_configs, triggering=True)

    def _validate(
        self, table_config: TableConfig, task_configs: Mapping[str, str], *, triggering: bool
    ) -> None:
        if table_config.tableType != "REALTIME":
            raise TaskConfigError(
                f"{self.task_type} exports REALTIME tables' completed segments; {table_config.tableName} "
                "is not REALTIME"
            )
        target = parse_target(table_config, task_configs, self._settings())
        buffer_ms(task_configs)
        table_max_num_tasks(task_configs)
        if target.kind == "s3":  # an unreachable endpoint, wrong credentials, no bucket: refused now
            uri = resolve_s3_under(target.location, self._settings().allowed_export_uris, TARGET)
            check_reachable(
                bucket_store(uri, self._settings()), TARGET, target.location, triggering=triggering
            )

    def _pending(self, table: TableConfig, configs: Mapping[str, str]) -> tuple[list[SegmentMetadata], str]:
        self._validate(table, configs, triggering=False)  # an S3 target's bucket is listed there
        target = parse_target(table, configs, self._settings())
        store = plugin_catalog(self.context).segments
        done = store.exported(table.tableName, target.key)
        cutoff = now_ms() - buffer_ms(configs)
        pending = [
            s
            for s in store.visible_segments(table.tableName)
            if s.status is SegmentStatus.DONE
            and s.committed_ms is not None
            and s.committed_ms <= cutoff
            and s.segment_name not in done
        ]
        pending.sort(key=lambda s: (s.committed_ms or 0, s.segment_name))
        return pending, target.key

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        pending, _ = self._pending(table_config, task_configs)
        return self._subtasks(table_config, task_configs, pending)

    def _subtasks(
        self, table: TableConfig, configs: Mapping[str, str], pending: Sequence[SegmentMetadata]
    ) -> list[PinotTaskConfig]:
        keep = {k: v for k, v in configs.items() if k in (TARGET, TARGET_TABLE)}
        return [
            self.task(table.tableName, {**keep, SEGMENT_NAME: s.segment_name})
            for s in pending[: table_max_num_tasks(configs)]
        ]

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        pending, _ = self._pending(request.table_config, request.properties)
        if not pending:
            return BatchGeneration.done(inputs_to_process=request.inputs_processed, input_unit="segments")
        subtasks = self._subtasks(request.table_config, request.properties, pending)
        return BatchGeneration(
            subtasks=subtasks,
            inputs_in_batch=len(subtasks),
            inputs_to_process=request.inputs_processed + len(pending),
            input_unit="segments",
        )


class DataExportTaskExecutor(BaseTaskExecutor):
    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        _, manager, table, schema = subtask_scope(task.table_name, context)
        try:
            target = parse_target(table, task.configs, context.settings)
        except TaskConfigError as exc:
            raise FatalTaskError(str(exc)) from None
        name = task.configs[SEGMENT_NAME]
        if name in manager.store.exported(table.tableName, target.key):
            return SubtaskResult(counts={"segmentsSkipped": 1}, message=f"{name} was exported already")
        segment = manager.store.get_segment(table.tableName, name)
        if segment is None:
            raise FatalTaskError(f"segment {name} of {table.tableName} no longer exists")
        if target.kind == "dir":
            with manager.local_copy(segment) as source:
                rows = self._to_directory(
                    Path(target.location), table, segment, source, manager.duckdb_config
                )
        elif target.kind == "s3":
            rows = self._to_s3(target, table, segment, manager, context.settings)
        else:
            rows = self._to_postgres(target, table, schema, segment, manager)
        manager.store.record_export(table.tableName, target.key, name, segment.total_docs)
        return SubtaskResult(counts={"rowsExported": rows, "segmentsExported": 1})

    def _to_directory(
        self,
        root: Path,
        table: TableConfig,
        segment: SegmentMetadata,
        source: Path,
        duckdb_config: DuckDBConfig,
    ) -> int:
        directory = root / table.tableName
        directory.mkdir(parents=True, exist_ok=True)
        staged = directory / f".staging-{segment.segment_name}-{os.getpid()}.parquet"
        with duckdb_config.connect(source.parent, directory) as conn:
            conn.execute(
                f"COPY (SELECT * FROM read_parquet({sql_string(str(source))})) "
                f"TO {sql_string(str(staged))} (FORMAT parquet)"
            )
        os.replace(staged, directory / f"{segment.segment_name}.parquet")
        return segment.total_docs

    def _to_s3(
        self,
        target: ExportTarget,
        table: TableConfig,
        segment: SegmentMetadata,
        manager: SegmentManager,
        settings: Settings,
    ) -> int:
        """The segment's Parquet file as ``<prefix>/<table>/<segment>.parquet``, in one PUT (whole or not
        at all); a retry rewrites the same key."""
        uri = resolve_s3_under(target.location, settings.allowed_export_uris, TARGET)
        key = uri.join(table.tableName, f"{segment.segment_name}.parquet").key
        try:
            with manager.local_copy(segment) as source:
                bucket_store(uri, settings).put_file(source, key)
        except TaskConfigError as exc:
            raise FatalTaskError(str(exc)) from None
        except StorageUnavailableError:
            raise  # an outage: the subtask waits it out (activities/subtasks.py)
        except StorageError as exc:
            raise FatalTaskError(f"{TARGET} {target.location}: {exc}") from None
        return segment.total_docs

    def _to_postgres(
        self,
        target: ExportTarget,
        table: TableConfig,
        schema: Schema,
        segment: SegmentMetadata,
        manager: SegmentManager,
    ) -> int:
        """The rows and the claim in ``taskplan_exported_segments`` in one transaction: a retry or a
        duplicate of a subtask whose transaction committed claims nothing and copies nothing."""
        assert target.table is not None
        columns = list(schema.fields)
        try:
            with psycopg.connect(target.location, connect_timeout=10) as conn, conn.transaction():
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (source_table text NOT NULL, segment_name text NOT "
                        "NULL, total_docs bigint NOT NULL, exported_at timestamptz NOT NULL DEFAULT now(), "
                        "PRIMARY KEY (source_table, segment_name))"
                    ).format(sql.Identifier(EXPORT_LOG_TABLE))
                )
                conn.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                        sql.Identifier(target.table), sql.SQL(", ").join(pg_column(f) for f in columns)
                    )
                )
                claimed = conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (source_table, segment_name, total_docs) VALUES (%s, %s, %s) "
                        "ON CONFLICT DO NOTHING RETURNING 1"
                    ).format(sql.Identifier(EXPORT_LOG_TABLE)),
                    (table.tableName, segment.segment_name, segment.total_docs),
                ).fetchone()
                if claimed is None:
                    return 0  # exported already, by an earlier attempt or a duplicate
                with manager.local_copy(segment) as source, conn.cursor() as cursor:
                    return copy_parquet(cursor, source, target.table, columns, manager.duckdb_config)
        except psycopg.OperationalError as exc:
            raise RuntimeError(f"export target {target.table}: {exc}") from exc  # retried
        except psycopg.DataError as exc:  # a value the target cannot hold (a NUL in text, say): no retry
            raise FatalTaskError(
                f"export target {target.table}: segment {segment.segment_name}: {exc}".strip()
            ) from None


DATA_EXPORT = TaskTypePlugin(
    generator=DataExportTaskGenerator,
    executor=DataExportTaskExecutor,
    description="exports a REALTIME table's completed segments to a directory or PostgreSQL, once each",
)
