"""Tables, schemas and input files for data-plane tests, and a direct driver for task types."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from taskplan.catalog import Catalog
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager
from taskplan.models.table import Schema, TableConfig
from taskplan.plugin import BatchRequest, ExecutionContext, PluginContext, SubtaskResult, TaskTypePlugin
from taskplan.settings import Settings

EVENT_COLUMNS = ("id", "country", "amount", "ts")


def events_schema(raw: str) -> Schema:
    return Schema.model_validate(
        {
            "schemaName": raw,
            "dimensionFieldSpecs": [
                {"name": "id", "dataType": "LONG"},
                {"name": "country", "dataType": "STRING"},
                {"name": "tags", "dataType": "STRING", "singleValueField": False},
            ],
            "metricFieldSpecs": [{"name": "amount", "dataType": "DOUBLE"}],
            "dateTimeFieldSpecs": [
                {
                    "name": "ts",
                    "dataType": "LONG",
                    "format": "1:MILLISECONDS:EPOCH",
                    "granularity": "1:MILLISECONDS",
                }
            ],
        }
    )


def make_table(
    catalog: Catalog,
    raw: str,
    table_type: str = "OFFLINE",
    task_configs: Mapping[str, Mapping[str, str]] | None = None,
    **extra: Any,
) -> TableConfig:
    catalog.put_schema(events_schema(raw))
    config = TableConfig.model_validate(
        {
            "tableName": raw,
            "tableType": table_type,
            "task": {"taskTypeConfigsMap": {k: dict(v) for k, v in (task_configs or {}).items()}},
            **extra,
        }
    )
    catalog.create_table(config)
    return config


def event(i: int, country: str = "US", amount: float = 1.5, ts: int = 1_700_000_000_000) -> dict[str, Any]:
    return {"id": i, "country": country, "amount": amount, "ts": ts + i, "tags": ["a", "b"]}


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*EVENT_COLUMNS, "tags"])
        for row in rows:
            writer.writerow([row.get(c) for c in EVENT_COLUMNS] + [";".join(row.get("tags") or [])])
    return path


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".jsonl.tmp")
    write_jsonl(staged, rows)
    with duckdb.connect() as conn:
        conn.execute(
            f"COPY (SELECT * FROM read_json('{staged}', format='newline_delimited', columns="
            "{'id': 'BIGINT', 'country': 'VARCHAR', 'amount': 'DOUBLE', 'ts': 'BIGINT', "
            "'tags': 'VARCHAR[]'})) "
            f"TO '{path}' (FORMAT parquet)"
        )
    staged.unlink()
    return path


def table_rows(manager: SegmentManager, table: str) -> list[dict[str, Any]]:
    rows = [r for s in manager.store.visible_segments(table) for r in manager.read(s)]
    return sorted(rows, key=lambda r: (r["id"], r["country"] or ""))


def deep_store_leaks(manager: SegmentManager, table: str) -> set[str]:
    """Files in the table's deep-store directory that no segment row names."""
    known = {s.file_name for s in manager.store.all_segments(table)}
    return set(manager.deep_store.files(table)) - known


@dataclass
class DirectRun:
    batches: int = 0
    results: list[SubtaskResult] = field(default_factory=list)
    custom_stats: dict[str, str] = field(default_factory=dict)

    def total(self, key: str) -> float:
        return sum(r.counts.get(key, 0) for r in self.results)


def run_plan_directly(
    plugin: TaskTypePlugin,
    settings: Settings,
    catalog: Catalog,
    table: TableConfig,
    configs: Mapping[str, str],
    *,
    plan_id: str = "direct-plan",
    max_batches: int = 100,
) -> DirectRun:
    """Generate and execute batches in process, as the plan workflow would, until the generator is done."""
    context = PluginContext(settings=settings, catalog=catalog, duckdb_config=DuckDBConfig())
    generator = plugin.generator()
    generator.init(context)
    run = DirectRun()
    cursor: Mapping[str, str] = {}
    processed = 0
    for sequence in range(max_batches):
        batch = generator.generate_next_batch(
            BatchRequest(
                plan_id=plan_id,
                table_config=catalog.require_table(table.tableName),
                properties=configs,
                batch_sequence=sequence,
                cursor=cursor,
                inputs_processed=processed,
                previous_batch=None,
            )
        )
        if batch.no_more_work and not batch.subtasks:
            run.custom_stats = dict(batch.custom_stats)
            return run
        cursor = batch.cursor or cursor
        processed += batch.inputs_in_batch
        run.batches += 1
        for index, task in enumerate(batch.subtasks):
            executor = plugin.executor()
            run.results.append(
                executor.execute(task, ExecutionContext(subtask_name=f"t_{index}", attempt=1, plugin=context))
            )
    raise AssertionError(f"the plan did not finish in {max_batches} batches")
