"""MergeRollupTask, Pinot's semantics: merge a table's small segments per time bucket, level by level.

Task configs, per merge level (any name, e.g. ``1day``, ``1month``; levels are ordered by bucket size):
``<level>.bucketTimePeriod`` (required), ``<level>.bufferTimePeriod`` (required), ``<level>.mergeType``
(concat, rollup or dedup; default concat), ``<level>.maxNumRecordsPerSegment`` (default 5,000,000),
``<level>.maxNumParallelBuckets`` (default 1), ``<level>.roundBucketTimePeriod`` (every merged row's time
rounded down to it, whatever the merge type, as Pinot does), ``<level>.eraseDimensionValues`` (columns,
comma-separated, set to their default null value before the merge); and ``<metricColumn>.aggregationType``
(sum, min or max; sum by default) for rollup. Periods are Pinot's (``1d``, ``6h``, ``4h30m``).

A segment belongs to the bucket its start time falls in; its rows past that bucket (a segment spanning
buckets) are written, unmerged, to segments of no merge level, which their own bucket merges later. At a
level, the candidates are the DONE segments not yet merged at this level or a higher one (a merged segment
records its level in its custom map, key ``MergeRollupTask.mergeLevel``). A bucket is ready once its end plus
the buffer has passed and, above the first level, once the level below has merged past it. Each level has a
watermark, the start of the first bucket it has not finished, kept in the table's task metadata
(``watermarkMap``, Pinot's MergeRollupTaskMetadata); buckets before it are never merged again (late data there
stays as it is).

One subtask per bucket, at most ``maxNumParallelBuckets`` buckets per level per batch. A subtask merges its
bucket's segments with DuckDB into segments of at most ``maxNumRecordsPerSegment`` rows and swaps them in
under one segment lineage entry whose id and targets derive from its sources: a retry after a crash between
upload and swap finishes the same replacement, and a duplicate finds the sources gone and does nothing. As a
plan, one trigger walks every ready bucket, batch after batch, level after level.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

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
from taskplan.tasktypes.common import (
    DataTaskGenerator,
    int_config,
    plugin_catalog,
    require_schema,
    short_hash,
    subtask_scope,
)
from taskplan.tasktypes.rewriting import (
    AGGREGATION_SUFFIX,
    MAX_NUM_RECORDS_PER_SEGMENT,
    Written,
    aggregations,
    bucket_of,
    epoch_time_column,
    max_records_config,
    merge_type_config,
    period_config,
    positive_period,
    swap_in,
    write_merged,
)

TASK_TYPE = "MergeRollupTask"
MERGE_LEVEL_KEY = "MergeRollupTask.mergeLevel"
BUCKET_START_KEY = "MergeRollupTask.bucketStartMs"
WATERMARK_MAP = "watermarkMap"
MERGE_LEVEL = "mergeLevel"
SEGMENT_NAME = "segmentName"
WINDOW_START = "windowStartMs"
WINDOW_END = "windowEndMs"
LEVEL_PROPERTIES = (
    "bucketTimePeriod",
    "bufferTimePeriod",
    "mergeType",
    MAX_NUM_RECORDS_PER_SEGMENT,
    "maxNumParallelBuckets",
    "roundBucketTimePeriod",
    "maxNumRecordsPerTask",
    "eraseDimensionValues",
)


@dataclass(frozen=True)
class MergeLevel:
    name: str
    bucket_ms: int
    buffer_ms: int
    merge_type: str
    max_records: int
    max_parallel_buckets: int
    round_ms: int | None
    erase: tuple[str, ...] = ()  # eraseDimensionValues: columns set to their default null value


def merge_levels(configs: Mapping[str, str]) -> list[MergeLevel]:
    """The merge levels the task configs define, smallest bucket first; TaskConfigError naming a bad one."""
    names: set[str] = set()
    for key in configs:
        prefix, dot, prop = key.rpartition(".")
        if dot and prop in LEVEL_PROPERTIES:
            names.add(prefix)
    for key in configs:  # a misspelt property of a level is refused, not ignored
        prefix, dot, prop = key.rpartition(".")
        if dot and prefix in names and prop not in LEVEL_PROPERTIES and key != prefix + AGGREGATION_SUFFIX:
            raise TaskConfigError(
                f"{key}: unknown merge level property {prop!r} ({', '.join(LEVEL_PROPERTIES)})"
            )
    if not names:
        raise TaskConfigError(
            f"{TASK_TYPE} needs at least one merge level: "
            "<level>.bucketTimePeriod and <level>.bufferTimePeriod"
        )
    levels = []
    for name in sorted(names):
        level = {k[len(name) + 1 :]: v for k, v in configs.items() if k.startswith(name + ".")}
        key = f"{name}.%s"
        buffer_ms = period_config(level, "bufferTimePeriod")
        if buffer_ms is None:
            raise TaskConfigError(f"{key % 'bufferTimePeriod'} is required: a period such as 1d or 6h")
        try:
            bucket_ms = positive_period(level, "bucketTimePeriod")
            parallel = int_config(level, "maxNumParallelBuckets", 1, low=1, high=10_000)
            round_ms = period_config(level, "roundBucketTimePeriod")
            merge_type = merge_type_config(level, "mergeType")
            max_records = max_records_config(level, MAX_NUM_RECORDS_PER_SEGMENT)
        except TaskConfigError as exc:
            raise TaskConfigError(f"{name}.{exc}") from None
        assert parallel is not None
        if round_ms is not None and round_ms <= 0:
            raise TaskConfigError(f"{key % 'roundBucketTimePeriod'} must be longer than 0")
        erase = tuple(
            sorted({c.strip() for c in (level.get("eraseDimensionValues") or "").split(",")} - {""})
        )
        levels.append(
            MergeLevel(name, bucket_ms, buffer_ms, merge_type, max_records, parallel, round_ms, erase)
        )
    levels.sort(key=lambda lv: (lv.bucket_ms, lv.name))
    for lower, upper in itertools.pairwise(levels):
        if upper.bucket_ms % lower.bucket_ms:
            raise TaskConfigError(
                f"{upper.name}.bucketTimePeriod must be a multiple of {lower.name}.bucketTimePeriod"
            )
    return levels


def ingestion_type(table: TableConfig) -> str:
    """APPEND or REFRESH, read as Pinot does (IngestionConfigUtils.getBatchSegmentIngestionType): the batch
    ingestion config's, else the deprecated ``segmentsConfig.segmentPushType``, else APPEND."""
    batch = table.ingestionConfig.batchIngestionConfig if table.ingestionConfig else None
    if batch is not None:
        return batch.segmentIngestionType
    return str(table.segmentsConfig.get("segmentPushType") or "APPEND").upper()


@dataclass(frozen=True)
class _Bucket:
    level: MergeLevel
    start: int
    segments: list[SegmentMetadata]


class MergeRollupTaskGenerator(DataTaskGenerator):
    task_type: ClassVar[str] = TASK_TYPE

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        if schema is None:
            raise TaskConfigError(f"table {table_config.tableName} has no schema")
        columns = {f.name for f in schema.fields}
        for level in merge_levels(task_configs):
            unknown = [c for c in level.erase if c not in columns]
            if unknown:  # Pinot checks them against the schema too
                names = ", ".join(unknown)
                raise TaskConfigError(
                    f"{level.name}.eraseDimensionValues: {names} not in schema {schema.schemaName}"
                )
        aggregations(task_configs, schema)
        epoch_time_column(table_config, schema)

    def _buckets(self, table: TableConfig, configs: Mapping[str, str]) -> tuple[list[_Bucket], int]:
        """The buckets to merge now, and how many buckets are ready in all. Advances the watermarks past
        the buckets every level has finished."""
        catalog = plugin_catalog(self.context)
        schema = require_schema(catalog, table)
        self.validate_task_configs(table, schema, configs)
        if ingestion_type(table) == "REFRESH":
            # Pinot's generator skips REFRESH tables: a refresh push replaces segments by name, and merged
            # segments would keep the rows it replaced.
            raise TaskConfigError(
                f"{TASK_TYPE} merges APPEND tables only: {table.tableName} is a REFRESH table"
            )
        levels = merge_levels(configs)
        rank = {lv.name: i for i, lv in enumerate(levels)}
        store = catalog.segments
        segments = [
            s
            for s in store.visible_segments(table.tableName)
            if s.status is SegmentStatus.DONE and s.start_time is not None
        ]
        metadata = store.task_metadata(table.tableName, TASK_TYPE) or {}
        old_marks: dict[str, int] = dict(metadata.get(WATERMARK_MAP) or {})
        marks = dict(old_marks)
        now = now_ms()
        chosen: list[_Bucket] = []
        ready_count = 0
        for index, level in enumerate(levels):
            candidates = [s for s in segments if rank.get(s.custom.get(MERGE_LEVEL_KEY, ""), -1) < index]
            limit = now - level.buffer_ms
            if index > 0:
                below = marks.get(levels[index - 1].name)
                if below is None:
                    continue  # the level below has not started: nothing is merged at this one yet
                limit = min(limit, below)
            mark = marks.get(level.name)
            if mark is None:
                if not candidates:
                    continue
                mark = bucket_of(min(s.start_time or 0 for s in candidates), level.bucket_ms)
            by_bucket: dict[int, list[SegmentMetadata]] = {}
            for s in candidates:
                start = bucket_of(s.start_time or 0, level.bucket_ms)
                if start >= mark:
                    by_bucket.setdefault(start, []).append(s)
            first_unready = bucket_of(limit - level.bucket_ms, level.bucket_ms) + level.bucket_ms
            ready = [b for b in sorted(by_bucket) if b + level.bucket_ms <= limit]
            ready_count += len(ready)
            pending = sorted(by_bucket)
            marks[level.name] = max(mark, min([first_unready, *pending[:1]]))
            for start in ready[: level.max_parallel_buckets]:
                chosen.append(_Bucket(level, start, sorted(by_bucket[start], key=lambda s: s.segment_name)))
        if marks != old_marks:
            store.put_task_metadata(table.tableName, TASK_TYPE, {**metadata, WATERMARK_MAP: marks})
        return chosen, ready_count

    def _subtasks(
        self, table: TableConfig, configs: Mapping[str, str], buckets: Sequence[_Bucket]
    ) -> list[PinotTaskConfig]:
        shared = {k: v for k, v in configs.items() if k.endswith(AGGREGATION_SUFFIX)}
        return [
            self.task(
                table.tableName,
                {
                    **shared,
                    **{k: v for k, v in configs.items() if k.startswith(b.level.name + ".")},
                    MERGE_LEVEL: b.level.name,
                    WINDOW_START: str(b.start),
                    WINDOW_END: str(b.start + b.level.bucket_ms),
                    SEGMENT_NAME: ",".join(s.segment_name for s in b.segments),
                },
            )
            for b in buckets
        ]

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        return self._subtasks(table_config, task_configs, self._buckets(table_config, task_configs)[0])

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        buckets, ready = self._buckets(request.table_config, request.properties)
        if not buckets:
            return BatchGeneration.done(inputs_to_process=request.inputs_processed, input_unit="buckets")
        return BatchGeneration(
            subtasks=self._subtasks(request.table_config, request.properties, buckets),
            inputs_in_batch=len(buckets),
            inputs_to_process=request.inputs_processed + ready,
            input_unit="buckets",
        )


class MergeRollupTaskExecutor(BaseTaskExecutor):
    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        _, manager, table, schema = subtask_scope(task.table_name, context)
        configs = task.configs
        level_name = configs[MERGE_LEVEL]
        try:
            [level] = [lv for lv in merge_levels(configs) if lv.name == level_name]
            aggregation = aggregations(configs, schema)
            time_col = epoch_time_column(table, schema)
        except (TaskConfigError, ValueError) as exc:
            raise FatalTaskError(f"merge level {level_name}: {exc}") from None
        names = sorted(n for n in configs[SEGMENT_NAME].split(",") if n)
        visible = manager.store.visible_segments(table.tableName, names)
        if len(visible) != len(names):
            # Merged already (a retry or a duplicate), or changed by another replacement: the generator
            # finds what is left of the bucket next time.
            return SubtaskResult(counts={"segmentsSkipped": len(names)}, message="sources gone or replaced")
        start, end = int(configs[WINDOW_START]), int(configs[WINDOW_END])
        token = short_hash(level.name, *names, length=10)
        written = write_merged(
            manager,
            table,
            schema,
            visible,
            MergeSpec(
                level.merge_type,
                aggregation,
                time_col,
                level.round_ms,
                window=(start, end),
                window_keeps_null_time=True,  # rows with no time stay in the segment's own bucket
                erase_columns=level.erase,
            ),
            level.max_records,
            f"merged_{level.name}_{start}_{token}",
            source=TASK_TYPE,
            custom={MERGE_LEVEL_KEY: level.name, BUCKET_START_KEY: str(start)},
        )
        if any((s.end_time or 0) >= end for s in visible):
            # Rows past the bucket (a segment spanning buckets) are kept as they are, in segments of no
            # merge level: their own bucket merges them later.
            try:
                spilled = write_merged(
                    manager,
                    table,
                    schema,
                    visible,
                    MergeSpec("concat", time_column=time_col, window=(end, 2**63 - 1)),
                    level.max_records,
                    f"spilled_{level.name}_{start}_{token}",
                    source=TASK_TYPE,
                    custom={},
                )
            except BaseException:
                written.discard()
                raise
            written = Written(written.segments + spilled.segments, written.staged + spilled.staged)
        if not swap_in(
            manager, table.tableName, names, written, f"merge-{token}", f"{TASK_TYPE}:{level.name}"
        ):
            return SubtaskResult(
                counts={"segmentsSkipped": len(names)}, message="sources held by another replacement"
            )
        rows_in = sum(s.total_docs for s in visible)
        return SubtaskResult(
            counts={
                "rowsIn": rows_in,
                "rowsOut": written.total_docs,
                "segmentsMerged": len(names),
                "segmentsCreated": len(written.segments),
            }
        )


MERGE_ROLLUP = TaskTypePlugin(
    generator=MergeRollupTaskGenerator,
    executor=MergeRollupTaskExecutor,
    description="merges (concat, rollup, dedup) a table's segments per time bucket and merge level",
)
