"""AlterTableTask: rewrite every segment of a table to its current schema and table config, as the
specification's StarTreeAlterTableTask. Orchestration only: the legacy one-shot flow is refused.

What a rewrite applies: a column the schema gained is written with its default (``defaultNullValue``, else
Pinot's default null value of its type: ``null`` for a STRING dimension, the type's minimum for a numeric
dimension, 0 for a metric); a column the schema lost is dropped; a column whose type was widened (INT to
LONG, FLOAT to DOUBLE) is cast; the rows are sorted by ``tableIndexConfig.sortedColumn`` when the table config
names one; the segment's time range is read again from the table's time column.

The target is a signature of the schema's columns (names, types, defaults), the time column and the sorted
column. Each rewritten segment records it in its custom map (``AlterTableTask.signature``), so a plan picks
only segments not yet at the current signature: a plan stopped or failed midway is resumed by the next
trigger where it stopped, and a schema changed again while it runs is picked up by its next batch. A
subtask takes consecutive segments up to ``maxNumRecordsPerTask`` rows (or ``maxNumSegmentsPerTask``
segments), as SegmentPurgeTask's do (taskplan/tasktypes/sizing.py: the plan walks the table with a cursor),
``tableMaxNumTasks`` (default 10) per batch; it swaps each segment's rewrite in under a
segment lineage entry derived from the segment and the signature, so a retry after a crash between upload
and swap finishes the same replacement, and a duplicate finds the segment gone. A segment whose file already
has the schema's columns and types (and nothing else to change) is only marked. Consuming (IN_PROGRESS)
segments of a REALTIME table are left alone; they are rewritten once committed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

from taskplan.data.merging import MergeSpec, default_value, file_columns, matches_schema
from taskplan.data.parquet import column_types, time_column_of
from taskplan.data.segments import SegmentManager
from taskplan.models.table import Schema, TableConfig
from taskplan.plugin import (
    BaseTaskExecutor,
    BatchGeneration,
    BatchRequest,
    ExecutionContext,
    PinotTaskConfig,
    SubtaskResult,
    TaskConfigError,
    TaskTypePlugin,
)
from taskplan.tasktypes.common import (
    DataTaskGenerator,
    plugin_catalog,
    require_schema,
    short_hash,
    subtask_scope,
    table_max_num_tasks,
)
from taskplan.tasktypes.rewriting import DEFAULT_MAX_RECORDS, local_sources, swap_in, write_merged
from taskplan.tasktypes.sizing import subtask_sizing, walk_segments

TASK_TYPE = "AlterTableTask"
SIGNATURE_KEY = "AlterTableTask.signature"
SEGMENT_NAME = "segmentName"
_ALTER_SUFFIX = re.compile(r"__a[0-9a-f]{8}$")


def sorted_columns(table: TableConfig, schema: Schema) -> list[str]:
    value = table.tableIndexConfig.get("sortedColumn") or []
    columns = [value] if isinstance(value, str) else [str(c) for c in value]
    known = {f.name for f in schema.fields}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise TaskConfigError(f"tableIndexConfig.sortedColumn names columns not in the schema: {unknown}")
    return columns


def signature(table: TableConfig, schema: Schema) -> str:
    """What a segment rewritten for this schema and table config looks like, as a short hash."""
    columns = [
        (f.name, t, repr(default_value(schema, f)))
        for f, t in zip(schema.fields, column_types(schema).values(), strict=True)
    ]
    described = {
        "columns": columns,
        "time": time_column_of(table, schema)[0],
        "sorted": sorted_columns(table, schema),
    }
    return short_hash(json.dumps(described, sort_keys=True), length=16)


def altered_name(segment: str, sig: str) -> str:
    return f"{_ALTER_SUFFIX.sub('', segment)}__a{short_hash(segment, sig, length=8)}"


class AlterTableTaskGenerator(DataTaskGenerator):
    task_type: ClassVar[str] = TASK_TYPE
    orchestration_only: ClassVar[bool] = True

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        if schema is None:
            raise TaskConfigError(f"table {table_config.tableName} has no schema")
        sorted_columns(table_config, schema)
        table_max_num_tasks(task_configs)
        subtask_sizing(task_configs, self.context.settings if self.context else None)

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        table = request.table_config
        catalog = plugin_catalog(self.context)
        schema = require_schema(catalog, table)
        self.validate_task_configs(table, schema, request.properties)
        target = signature(table, schema)
        walked = walk_segments(
            catalog,
            table.tableName,
            request.cursor,
            subtask_sizing(request.properties, self.context.settings if self.context else None),
            table_max_num_tasks(request.properties),
            custom_not=(SIGNATURE_KEY, target),
        )
        if not walked.groups:
            return BatchGeneration.done(inputs_to_process=request.inputs_processed, input_unit="segments")
        return BatchGeneration(
            subtasks=[
                self.task(table.tableName, {SEGMENT_NAME: ",".join(s.segment_name for s in group)})
                for group in walked.groups
            ],
            inputs_in_batch=walked.segments,
            inputs_to_process=max(walked.state.total or 0, request.inputs_processed + walked.segments),
            input_unit="segments",
            custom_stats={"signature": target},
            cursor=walked.state.cursor(),
        )


class AlterTableTaskExecutor(BaseTaskExecutor):
    """Rewrites the subtask's segments one after the other, each swapped in under its own lineage entry."""

    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        _, manager, table, schema = subtask_scope(task.table_name, context)
        target = signature(table, schema)
        names = [n for n in task.configs[SEGMENT_NAME].split(",") if n]
        counts: dict[str, int] = {}
        messages: list[str] = []
        for done, name in enumerate(names):
            if context.cancelled.is_set():
                break  # what is swapped in stays; a retry skips it
            result = self._alter(manager, table, schema, target, name)
            for key, value in result.counts.items():
                counts[key] = counts.get(key, 0) + int(value)
            if result.message:
                messages.append(result.message)
            if len(names) > 1:
                context.heartbeat({"segmentsDone": done + 1, "segments": len(names)})
        return SubtaskResult(counts=counts, message="; ".join(messages))

    def _alter(
        self, manager: SegmentManager, table: TableConfig, schema: Schema, target: str, name: str
    ) -> SubtaskResult:
        found = manager.store.visible_segments(table.tableName, [name])
        segment = found[0] if found else None
        if segment is None or segment.custom.get(SIGNATURE_KEY) == target:
            return SubtaskResult(counts={"segmentsSkipped": 1}, message=f"{name} is gone or altered already")
        custom = {**segment.custom, SIGNATURE_KEY: target}
        time_col, _ = time_column_of(table, schema)
        sort = sorted_columns(table, schema)
        with local_sources(manager, [segment]) as [path], manager.duckdb_config.pooled(path.parent) as conn:
            present = file_columns(conn, path)
        if matches_schema(schema, present) and segment.time_column == time_col and not sort:
            manager.store.update_segments([replace(segment, custom=custom)])
            return SubtaskResult(counts={"segmentsMarked": 1, "rowsScanned": 0})
        written = write_merged(
            manager,
            table,
            schema,
            [segment],
            MergeSpec("concat", sort_columns=sort),
            max(DEFAULT_MAX_RECORDS, segment.total_docs),
            altered_name(name, target),
            source=segment.source or TASK_TYPE,
            custom=custom,
        )
        # One segment in, one out (its name without the "_<i>" write_merged adds: a segment keeps its name).
        written.segments[:] = [
            replace(
                s,
                segment_name=altered_name(name, target),
                file_name=f"{altered_name(name, target)}.parquet",
                created_ms=segment.created_ms,
            )
            for s in written.segments
        ]
        lineage_id = f"alter-{short_hash(name, target, length=24)}"
        if not swap_in(manager, table.tableName, [name], written, lineage_id, TASK_TYPE):
            return SubtaskResult(
                counts={"segmentsSkipped": 1}, message=f"{name} is held by another replacement"
            )
        return SubtaskResult(counts={"segmentsRewritten": 1, "rowsRewritten": written.total_docs})


ALTER_TABLE = TaskTypePlugin(
    generator=AlterTableTaskGenerator,
    executor=AlterTableTaskExecutor,
    description="rewrites every segment to the table's current schema and config (orchestration only)",
)
