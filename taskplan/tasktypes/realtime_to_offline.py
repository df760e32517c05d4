"""RealtimeToOfflineSegmentsTask, Pinot's semantics: move each completed time window of a REALTIME table's
DONE segments into its OFFLINE table (same raw name).

Task configs: ``bucketTimePeriod`` (the window, default ``1d``), ``bufferTimePeriod`` (a window is moved
once its end is at least this long ago, default ``2d``), ``roundBucketTimePeriod`` (the time column is
rounded down to it), ``mergeType`` (concat, rollup or dedup; default concat),
``<metricColumn>.aggregationType`` (sum, min or max, for rollup), ``maxNumRecordsPerSegment`` (default
5,000,000). Rows whose time is null are not moved.

The watermark (``watermarkMs`` in the REALTIME table's task metadata, Pinot's
RealtimeToOfflineSegmentsTaskMetadata) is the start of the next window to move. It starts at the window of
the earliest DONE segment. A window is ready when its end plus the buffer has passed and no consuming
segment holds rows before its end; a window with no rows is skipped (the watermark moves past it). One
subtask moves one window: it reads the DONE segments overlapping the window, keeps the rows inside it,
merges them and writes the OFFLINE segments; then one catalog transaction records those segments and moves
the watermark from the window's start to its end, only if it is still at the window's start. So a crash
between the upload and that transaction leaves the window unmoved (the files it wrote have no segment and
the sweep deletes them), a retry moves it once, and a duplicate finds the watermark moved and writes
nothing: no window is moved twice (Pinot issue 14659) and none is skipped. As a plan, one trigger catches up
every ready window, one window per batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

from taskplan.catalog.errors import TableDroppedError
from taskplan.clock import now_ms
from taskplan.data.merging import MergeSpec
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
from taskplan.tasktypes.common import DataTaskGenerator, plugin_catalog, require_schema, subtask_scope
from taskplan.tasktypes.rewriting import (
    AGGREGATION_SUFFIX,
    MAX_NUM_RECORDS_PER_SEGMENT,
    aggregations,
    bucket_of,
    epoch_time_column,
    max_records_config,
    merge_type_config,
    period_config,
    positive_period,
    write_merged,
)

TASK_TYPE = "RealtimeToOfflineSegmentsTask"
WATERMARK = "watermarkMs"
WINDOW_START = "windowStartMs"
WINDOW_END = "windowEndMs"
SEGMENT_NAME = "segmentName"
BUCKET = "bucketTimePeriod"
BUFFER = "bufferTimePeriod"
ROUND = "roundBucketTimePeriod"
MERGE_TYPE = "mergeType"
WINDOW_KEY = "RealtimeToOfflineSegmentsTask.windowStartMs"
_PASSED_ON = (BUCKET, BUFFER, ROUND, MERGE_TYPE, MAX_NUM_RECORDS_PER_SEGMENT)


def offline_name(table: TableConfig) -> str:
    return f"{table.raw_table_name}_OFFLINE"


@dataclass(frozen=True)
class _Settings:
    bucket_ms: int
    buffer_ms: int
    round_ms: int | None
    merge_type: str
    max_records: int


def _settings(configs: Mapping[str, str]) -> _Settings:
    round_ms = period_config(configs, ROUND)
    if round_ms is not None and round_ms <= 0:
        raise TaskConfigError(f"{ROUND} must be a period longer than 0")
    buffer_ms = period_config(configs, BUFFER, "2d")
    assert buffer_ms is not None
    return _Settings(
        positive_period(configs, BUCKET, "1d"),
        buffer_ms,
        round_ms,
        merge_type_config(configs, MERGE_TYPE),
        max_records_config(configs, MAX_NUM_RECORDS_PER_SEGMENT),
    )


@dataclass(frozen=True)
class _Window:
    start: int
    end: int
    segments: list[SegmentMetadata]


class RealtimeToOfflineSegmentsTaskGenerator(DataTaskGenerator):
    task_type: ClassVar[str] = TASK_TYPE

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        if table_config.tableType != "REALTIME":
            raise TaskConfigError(
                f"{TASK_TYPE} moves a REALTIME table's segments; {table_config.tableName} is not REALTIME"
            )
        if schema is None:
            raise TaskConfigError(f"table {table_config.tableName} has no schema")
        _settings(task_configs)
        aggregations(task_configs, schema)
        epoch_time_column(table_config, schema)
        if plugin_catalog(self.context).get_table_config(offline_name(table_config)) is None:
            raise TaskConfigError(
                f"{TASK_TYPE} moves rows into table {offline_name(table_config)}, which does not exist"
            )

    def _window(self, table: TableConfig, configs: Mapping[str, str]) -> tuple[_Window | None, int]:
        """The next window to move (the watermark set to its start), and how many windows are ready."""
        catalog = plugin_catalog(self.context)
        self.validate_task_configs(table, require_schema(catalog, table), configs)
        settings = _settings(configs)
        bucket = settings.bucket_ms
        store = catalog.segments
        segments = store.visible_segments(table.tableName)
        done = [s for s in segments if s.status is SegmentStatus.DONE and s.start_time is not None]
        consuming = [
            s.start_time
            for s in segments
            if s.status is SegmentStatus.IN_PROGRESS and s.start_time is not None
        ]
        metadata = store.task_metadata(table.tableName, TASK_TYPE) or {}
        mark = metadata.get(WATERMARK)
        if mark is None and not done:
            return None, 0
        start = int(mark) if mark is not None else bucket_of(min(s.start_time or 0 for s in done), bucket)
        limit = now_ms() - settings.buffer_ms
        if consuming:
            limit = min(limit, min(consuming))
        # A window [start, end) is ready when end <= limit: the last ready window ends at or before it.
        ready = max(0, (limit - start) // bucket)
        window: _Window | None = None
        while start + bucket <= limit:
            end = start + bucket
            overlapping = [s for s in done if (s.start_time or 0) < end and (s.end_time or 0) >= start]
            if overlapping:
                window = _Window(start, end, sorted(overlapping, key=lambda s: s.segment_name))
                break
            later = [s.start_time or 0 for s in done if (s.start_time or 0) >= end]
            if not later:
                break  # nothing to move yet: the watermark waits at the first window with no rows
            start = max(end, bucket_of(min(later), bucket))  # an empty window: skipped
        if start != mark:
            moved = store.advance_watermark(
                offline_name(table),
                [],
                metadata_table=table.tableName,
                task_type=TASK_TYPE,
                key=WATERMARK,
                expected=None if mark is None else int(mark),
                new=start,
            )
            if moved is None:
                return None, 0  # a subtask moved it meanwhile: the next generation looks again
        return window, int(ready)

    def _subtask(self, table: TableConfig, configs: Mapping[str, str], window: _Window) -> PinotTaskConfig:
        passed = {k: v for k, v in configs.items() if k in _PASSED_ON or k.endswith(AGGREGATION_SUFFIX)}
        return self.task(
            table.tableName,
            {
                **passed,
                WINDOW_START: str(window.start),
                WINDOW_END: str(window.end),
                SEGMENT_NAME: ",".join(s.segment_name for s in window.segments),
            },
        )

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        window, _ = self._window(table_config, task_configs)
        return [] if window is None else [self._subtask(table_config, task_configs, window)]

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        window, ready = self._window(request.table_config, request.properties)
        if window is None:
            return BatchGeneration.done(inputs_to_process=request.inputs_processed, input_unit="windows")
        return BatchGeneration(
            subtasks=[self._subtask(request.table_config, request.properties, window)],
            inputs_in_batch=1,
            inputs_to_process=request.inputs_processed + max(1, ready),
            input_unit="windows",
        )


class RealtimeToOfflineSegmentsTaskExecutor(BaseTaskExecutor):
    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        catalog, manager, realtime, schema = subtask_scope(task.table_name, context)
        configs = task.configs
        try:
            settings = _settings(configs)
            aggregation = aggregations(configs, schema)
            time_col = epoch_time_column(realtime, schema)
        except TaskConfigError as exc:
            raise FatalTaskError(str(exc)) from None
        offline = catalog.get_table_config(offline_name(realtime))
        incarnation = catalog.segments.table_created_ms(offline_name(realtime))
        if offline is None or incarnation is None:
            raise FatalTaskError(f"table {offline_name(realtime)} does not exist")
        start, end = int(configs[WINDOW_START]), int(configs[WINDOW_END])
        store = manager.store
        mark = (store.task_metadata(realtime.tableName, TASK_TYPE) or {}).get(WATERMARK)
        if mark != start:
            return SubtaskResult(counts={"windowsSkipped": 1}, message=f"watermark is {mark}, not {start}")
        names = [n for n in configs[SEGMENT_NAME].split(",") if n]
        sources = store.visible_segments(realtime.tableName, names)
        if len(sources) != len(names):
            return SubtaskResult(counts={"windowsSkipped": 1}, message="segments of the window were replaced")
        spec = MergeSpec(settings.merge_type, aggregation, time_col, settings.round_ms, window=(start, end))
        raw = realtime.raw_table_name
        written = write_merged(
            manager,
            offline,
            schema,
            sources,
            spec,
            settings.max_records,
            f"{raw}_{start}_{end}",
            source=TASK_TYPE,
            custom={WINDOW_KEY: str(start)},
        )
        # A file name of its own for every attempt: a duplicate never overwrites the winner's files.
        segments = [
            replace(s, file_name=f"{s.segment_name}.{uuid.uuid4().hex[:12]}.parquet")
            for s in written.segments
        ]
        try:
            for segment, staged in zip(segments, written.staged, strict=True):
                manager.deep_store.publish(staged, offline.tableName, segment.file_name)
        finally:
            written.discard()
        try:
            replaced = store.advance_watermark(
                offline.tableName,
                segments,
                metadata_table=realtime.tableName,
                task_type=TASK_TYPE,
                key=WATERMARK,
                expected=start,
                new=end,
                table_created_ms=incarnation,
            )
        except TableDroppedError:  # the OFFLINE table was dropped meanwhile: nothing recorded, the files go
            for segment in segments:
                manager.deep_store.delete(offline.tableName, segment.file_name)
            raise FatalTaskError(f"table {offline.tableName} was dropped while the window moved") from None
        if replaced is None:  # a duplicate moved the window first: this attempt's files go
            for segment in segments:
                manager.deep_store.delete(offline.tableName, segment.file_name)
            return SubtaskResult(counts={"windowsSkipped": 1}, message="the window was moved meanwhile")
        for old in replaced:
            manager.deep_store.delete(offline.tableName, old.file_name)
        return SubtaskResult(
            counts={
                "windowsMoved": 1,
                "rowsIn": sum(s.total_docs for s in sources),
                "rowsOut": written.total_docs,
                "segmentsCreated": len(segments),
            }
        )


REALTIME_TO_OFFLINE = TaskTypePlugin(
    generator=RealtimeToOfflineSegmentsTaskGenerator,
    executor=RealtimeToOfflineSegmentsTaskExecutor,
    description="moves each completed time window of a REALTIME table into its OFFLINE table, once",
)
