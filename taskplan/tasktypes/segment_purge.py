"""SegmentPurgeTask: remove the rows matching ``purgeFilter`` from every segment of a table.

A subtask purges consecutive segments up to ``maxNumRecordsPerTask`` rows (default 1,000,000; or
``maxNumSegmentsPerTask`` segments when set), named comma-separated in ``segmentName`` as Pinot's
multi-segment tasks do (a subtask costs about 10 ms of orchestration, as much as purging 100,000 rows); at
most ``tableMaxNumTasks`` subtasks per batch. The plan walks the table's segments in name order with a
cursor, batch after batch, until every completed (DONE) segment has been purged with this filter (see
taskplan/tasktypes/sizing.py). A purged segment is replaced atomically by its
purged copy (segment lineage), which carries a marker for the filter, so a retried or duplicated subtask
finds the segment gone or marked and does nothing: no row is purged twice and none is lost. Progress is in
segments; each subtask reports ``rowsScanned`` and ``rowsPurged``.

``PurgeTask`` (Pinot's name) is the same work as a one-shot batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from taskplan.catalog.errors import SegmentConflictError
from taskplan.data.parquet import (
    column_types,
    copy_to_parquet,
    sql_string,
    time_column_of,
)
from taskplan.data.predicate import PurgeFilterError, keep_rows_sql, validate_purge_filter
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentMetadata, SegmentStatus
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
from taskplan.tasktypes.sizing import Walked, subtask_sizing, walk_segments

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
        subtask_sizing(task_configs, self.context.settings if self.context else None)

    def _filter(self, configs: Mapping[str, str], schema: Schema) -> str:
        expression = configs.get(PURGE_FILTER)
        if expression is None:
            raise TaskConfigError(
                f"{PURGE_FILTER} is required: a SQL boolean expression, e.g. country = 'US'"
            )
        try:
            return validate_purge_filter(expression, column_types(schema))
        except PurgeFilterError as exc:
            raise TaskConfigError(str(exc)) from None

    def _batch(
        self, table: TableConfig, configs: Mapping[str, str], cursor: Mapping[str, str]
    ) -> tuple[list[PinotTaskConfig], Walked]:
        """The next batch's subtasks after the plan's cursor (see taskplan/tasktypes/sizing.py)."""
        catalog = plugin_catalog(self.context)
        schema = require_schema(catalog, table)
        expression = self._filter(configs, schema)
        walked = walk_segments(
            catalog,
            table.tableName,
            cursor,
            subtask_sizing(configs, self.context.settings if self.context else None),
            table_max_num_tasks(configs),
            lacking_custom=filter_marker(expression),
        )
        subtasks = [
            self.task(
                table.tableName,
                {PURGE_FILTER: expression, SEGMENT_NAME: ",".join(s.segment_name for s in group)},
            )
            for group in walked.groups
        ]
        return subtasks, walked

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        return self._batch(table_config, task_configs, {})[0]

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        subtasks, walked = self._batch(request.table_config, request.properties, request.cursor)
        if not subtasks:
            return BatchGeneration.done(inputs_to_process=request.inputs_processed, input_unit="segments")
        return BatchGeneration(
            subtasks=subtasks,
            inputs_in_batch=walked.segments,
            inputs_to_process=max(walked.state.total or 0, request.inputs_processed + walked.segments),
            input_unit="segments",
            cursor=walked.state.cursor(),
        )


class PurgeTaskGenerator(SegmentPurgeTaskGenerator):
    """Pinot's PurgeTask name: the same purge, one-shot only."""

    task_type: ClassVar[str] = "PurgeTask"
    supports_orchestration: ClassVar[bool] = False


@dataclass
class _Rewritten:
    """A segment's kept rows, written to a staged file (not yet published)."""

    segment: SegmentMetadata
    staged: Path
    purged: SegmentMetadata  # the metadata of the purged copy

    @property
    def rows_purged(self) -> int:
        return self.segment.total_docs - self.purged.total_docs


class SegmentPurgeTaskExecutor(BaseTaskExecutor):
    """Rewrites the subtask's segments without the matching rows, then swaps them in under one segment
    lineage (two catalog transactions per subtask, whatever its number of segments)."""

    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        names = [n for n in task.configs[SEGMENT_NAME].split(",") if n]
        manager = segment_manager(context)
        catalog = plugin_catalog(context)
        table = catalog.require_table(task.table_name)
        schema = require_schema(catalog, table)
        try:
            expression = validate_purge_filter(task.configs[PURGE_FILTER], column_types(schema))
        except PurgeFilterError as exc:
            raise FatalTaskError(str(exc)) from None
        marker = filter_marker(expression)
        visible = {s.segment_name: s for s in manager.store.visible_segments(table.tableName, names)}
        # Gone or marked: purged already, by an earlier attempt or a duplicate of this subtask.
        todo = [visible[n] for n in names if n in visible and marker not in visible[n].custom]
        counts = {"rowsScanned": 0, "rowsPurged": 0}
        rewritten: list[_Rewritten] = []
        try:
            for segment in todo:
                if context.cancelled.is_set():
                    return SubtaskResult(counts=counts)  # nothing swapped in: a retry starts over
                rewritten.append(self._rewrite(manager, table, schema, segment, expression, marker))
                if len(todo) > 1:
                    context.heartbeat({"segmentsRewritten": len(rewritten), "segments": len(todo)})
            unchanged = [r for r in rewritten if r.rows_purged == 0]
            if unchanged:  # nothing to remove: the segment is only marked
                manager.store.update_segments([r.purged for r in unchanged])
            changed = [r for r in rewritten if r.rows_purged > 0]
            swapped = self._swap(manager, table.tableName, changed, expression)
        finally:
            for r in rewritten:
                r.staged.unlink(missing_ok=True)
        counts["rowsScanned"] = sum(r.segment.total_docs for r in unchanged + swapped)
        counts["rowsPurged"] = sum(r.rows_purged for r in swapped)
        # Each segment is purged here, or skipped: gone, marked, or held by another replacement.
        purged = len(unchanged) + len(swapped)
        if purged:
            counts["segmentsPurged"] = purged
        if len(names) > purged:
            counts["segmentsSkipped"] = len(names) - purged
        return SubtaskResult(counts=counts)

    def _rewrite(
        self,
        manager: SegmentManager,
        table: TableConfig,
        schema: Schema,
        segment: SegmentMetadata,
        expression: str,
        marker: str,
    ) -> _Rewritten:
        staged = manager.deep_store.staging_path(table.tableName)
        time_col, numeric = time_column_of(table, schema)
        try:
            # One read of the segment: the rows kept are written, and the write's statistics count them.
            # (A remote segment is read from a scratch copy beside the staged file.)
            with manager.local_copy(segment) as source, manager.duckdb_config.pooled(source.parent) as conn:
                kept = (
                    f"SELECT * FROM read_parquet({sql_string(str(source))}) WHERE {keep_rows_sql(expression)}"
                )
                stats = copy_to_parquet(conn, kept, staged, time_col, numeric)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        markers = {**segment.custom, marker: "true"}
        if stats.total_docs == segment.total_docs:
            return _Rewritten(segment, staged, replace(segment, custom=markers))
        purged = manager.metadata(
            table,
            purged_name(segment.segment_name, expression),
            SegmentStatus.DONE,
            stats,
            time_col=time_col,
            source=segment.source,
            custom=markers,
        )
        return _Rewritten(segment, staged, replace(purged, created_ms=segment.created_ms))

    def _swap(
        self, manager: SegmentManager, table: str, rewritten: list[_Rewritten], expression: str
    ) -> list[_Rewritten]:
        """Replace the segments by their purged copies at once; returns those swapped in. When another
        replacement holds one of them (a duplicate subtask, another plan), each is tried on its own."""
        if not rewritten:
            return []
        sources = [r.segment.segment_name for r in rewritten]
        # The id is the same for every attempt (and for a one-segment subtask of earlier versions).
        lineage_id = f"purge-{short_hash(*sources, expression, length=24)}"
        try:
            manager.store.start_replace(
                table,
                sources,
                [r.purged.segment_name for r in rewritten],
                lineage_id=lineage_id,
                owner="purge",
            )
        except SegmentConflictError:
            if len(rewritten) == 1:
                return []  # a duplicate got there first; the visible copy is (being) purged
            return [done for r in rewritten for done in self._swap(manager, table, [r], expression)]
        for r in rewritten:
            manager.deep_store.publish(r.staged, table, r.purged.file_name)
        manager.finish_replace(
            table,
            lineage_id,
            [r.purged for r in rewritten],
            successors={r.segment.segment_name: r.purged.segment_name for r in rewritten},
        )
        return rewritten


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
