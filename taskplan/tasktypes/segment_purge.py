"""SegmentPurgeTask: remove the rows matching ``purgeFilter`` from every segment of a table.

One subtask per segment, at most ``tableMaxNumTasks`` per batch; the plan chains batches until every
completed (DONE) segment has been purged with this filter. A purged segment is replaced atomically by its
purged copy (segment lineage), which carries a marker for the filter, so a retried or duplicated subtask
finds the segment gone or marked and does nothing: no row is purged twice and none is lost. Progress is in
segments; each subtask reports ``rowsScanned`` and ``rowsPurged``.

``PurgeTask`` (Pinot's name) is the same work as a one-shot batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

from taskplan.catalog.segments import SegmentConflictError, SegmentMetadata, SegmentStatus
from taskplan.data.parquet import copy_to_parquet, pooled_connection, sql_string, time_column_of
from taskplan.data.predicate import PurgeFilterError, keep_rows_sql, validate_purge_filter
from taskplan.data.segments import SegmentManager
from taskplan.models.table import Schema, TableConfig
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
from taskplan.tasktypes.common import (
    DataTaskGenerator,
    plugin_catalog,
    require_schema,
    segment_manager,
    short_hash,
    table_max_num_tasks,
)

PURGE_FILTER = "purgeFilter"
SEGMENT_NAME = "segmentName"
MARKER_PREFIX = "purged."
_PURGE_SUFFIX = re.compile(r"__p[0-9a-f]{8}$")


def filter_marker(expression: str) -> str:
    return MARKER_PREFIX + short_hash(expression, length=12)


def purged_name(segment: str, expression: str) -> str:
    base = _PURGE_SUFFIX.sub("", segment)
    return f"{base}__p{short_hash(segment, expression, length=8)}"


class SegmentPurgeTaskGenerator(DataTaskGenerator):
    task_type: ClassVar[str] = "SegmentPurgeTask"

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        if schema is None:
            raise TaskConfigError(f"table {table_config.tableName} has no schema")
        self._filter(task_configs, schema)
        table_max_num_tasks(task_configs)

    def _filter(self, configs: Mapping[str, str], schema: Schema) -> str:
        expression = configs.get(PURGE_FILTER)
        if expression is None:
            raise TaskConfigError(
                f"{PURGE_FILTER} is required: a SQL boolean expression, e.g. country = 'US'"
            )
        try:
            return validate_purge_filter(expression, [f.name for f in schema.fields])
        except PurgeFilterError as exc:
            raise TaskConfigError(str(exc)) from None

    def _pending(self, table: TableConfig, expression: str) -> list[SegmentMetadata]:
        segments = plugin_catalog(self.context).segments.visible_segments(table.tableName)
        marker = filter_marker(expression)
        return [s for s in segments if s.status is SegmentStatus.DONE and marker not in s.custom]

    def _subtasks(self, table: TableConfig, configs: Mapping[str, str]) -> tuple[list[PinotTaskConfig], int]:
        schema = require_schema(plugin_catalog(self.context), table)
        expression = self._filter(configs, schema)
        pending = self._pending(table, expression)
        chosen = pending[: table_max_num_tasks(configs)]
        subtasks = [
            self.task(table.tableName, {PURGE_FILTER: expression, SEGMENT_NAME: s.segment_name})
            for s in chosen
        ]
        return subtasks, len(pending)

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        return self._subtasks(table_config, task_configs)[0]

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        subtasks, pending = self._subtasks(request.table_config, request.properties)
        if not subtasks:
            return BatchGeneration.done(inputs_to_process=request.inputs_processed, input_unit="segments")
        return BatchGeneration(
            subtasks=subtasks,
            inputs_in_batch=len(subtasks),
            inputs_to_process=request.inputs_processed + pending,
            input_unit="segments",
        )


class PurgeTaskGenerator(SegmentPurgeTaskGenerator):
    """Pinot's PurgeTask name: the same purge, one-shot only."""

    task_type: ClassVar[str] = "PurgeTask"
    supports_orchestration: ClassVar[bool] = False


class SegmentPurgeTaskExecutor(BaseTaskExecutor):
    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        table_name = task.table_name
        name = task.configs[SEGMENT_NAME]
        manager = segment_manager(context)
        catalog = plugin_catalog(context)
        table = catalog.require_table(table_name)
        schema = require_schema(catalog, table)
        try:
            expression = validate_purge_filter(task.configs[PURGE_FILTER], [f.name for f in schema.fields])
        except PurgeFilterError as exc:
            raise FatalTaskError(str(exc)) from None
        marker = filter_marker(expression)
        segment = manager.store.visible_segment(table_name, name)
        if segment is None or marker in segment.custom:
            # Purged already, by an earlier attempt or a duplicate of this subtask.
            return SubtaskResult(counts={"rowsScanned": 0, "rowsPurged": 0, "segmentsSkipped": 1})
        scanned, purged = self._purge(manager, table, schema, segment, expression, marker)
        return SubtaskResult(counts={"rowsScanned": scanned, "rowsPurged": purged, "segmentsPurged": 1})

    def _purge(
        self,
        manager: SegmentManager,
        table: TableConfig,
        schema: Schema,
        segment: SegmentMetadata,
        expression: str,
        marker: str,
    ) -> tuple[int, int]:
        source = manager.path_of(segment)
        markers = {**segment.custom, marker: "true"}
        new_name = purged_name(segment.segment_name, expression)
        staged = manager.deep_store.staging_path(table.tableName)
        time_col, numeric = time_column_of(table, schema)
        try:
            # One read of the segment: the rows kept are written, and the write's statistics count them.
            with pooled_connection(source.parent) as conn:
                kept = (
                    f"SELECT * FROM read_parquet({sql_string(str(source))}) WHERE {keep_rows_sql(expression)}"
                )
                stats = copy_to_parquet(conn, kept, staged, time_col, numeric)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        scanned = segment.total_docs
        purged = scanned - stats.total_docs
        if purged == 0:
            staged.unlink(missing_ok=True)
            manager.store.update_segment(replace(segment, custom=markers))
            return scanned, 0
        purged_segment = manager.metadata(
            table,
            new_name,
            SegmentStatus.DONE,
            stats,
            time_col=time_col,
            source=segment.source,
            custom=markers,
        )
        purged_segment = replace(purged_segment, created_ms=segment.created_ms)
        lineage_id = f"purge-{short_hash(segment.segment_name, expression, length=24)}"
        try:
            manager.store.start_replace(
                table.tableName, [segment.segment_name], [new_name], lineage_id=lineage_id, owner="purge"
            )
        except SegmentConflictError:
            staged.unlink(missing_ok=True)
            return scanned, 0  # a duplicate got there first; the visible copy is (being) purged
        manager.deep_store.publish(staged, table.tableName, purged_segment.file_name)
        manager.finish_replace(table.tableName, lineage_id, [purged_segment])
        return scanned, purged


SEGMENT_PURGE = TaskTypePlugin(
    generator=SegmentPurgeTaskGenerator,
    executor=SegmentPurgeTaskExecutor,
    description="removes the rows matching purgeFilter from every segment, batch by batch",
)
PURGE = TaskTypePlugin(
    generator=PurgeTaskGenerator,
    executor=SegmentPurgeTaskExecutor,
    description="Pinot's PurgeTask: SegmentPurgeTask as a one-shot batch",
)
