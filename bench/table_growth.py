"""Issue 22, point 4: the cost of a purge plan's batch as the table grows. `python -m bench.table_growth
[--full]` (scenario `growth`).

For tables of 1,000, 10,000 and 100,000 segments (catalog rows; files only for the segments the plan
touches): all segments but a block in the middle of the table already carry the purge filter's marker, so
a real plan (controller in this process, one minion) purges the block in a few batches and its steps walk
the table as a plan in its middle does. Measured side by side for each size:

- the ``next_batch`` step (record the last batch's end, the gate, generate and record the next batch), timed
  around its three parts in the controller: the median of the steps in the middle of the walk, and the
  first (it counts the pending segments once) and last (the end of the pass, and a second pass over the
  whole table for segments added behind the cursor) steps;
- the same generation in process, the cursor in the middle of the table, against what each batch did before
  this change: list every visible segment of the table and keep the pending ones;
- the catalog's size for the table (rows; bytes: the SQLite file's growth) and the plan's Temporal history
  (events and bytes, per batch);
- ``GET /segments/{table}``, which returns every name as Pinot does (no paging), through the API process.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.data_plane import SCHEMA, make_parquet
from bench.harness import BenchStack, Report, median, new_raw_name
from bench.plans import run_plan
from taskplan.activities.generation import GenerationActivities
from taskplan.activities.plans import PlanActivities
from taskplan.catalog.schema import segments as segments_table
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentStatus
from taskplan.models.table import Schema
from taskplan.plugin import BatchRequest, PluginContext
from taskplan.tasktypes.segment_purge import SEGMENT_PURGE, filter_marker

FILTER = "country = 'US'"
ROWS = 1_000  # rows of each segment


@contextmanager
def step_timer() -> Iterator[list[dict[str, float]]]:
    """Times the parts of every next_batch step the in-process controller runs (its activity is bound at
    worker start, so its callees are wrapped): one dict per step."""
    steps: list[dict[str, float]] = []
    parts = {
        "record": (PlanActivities, "record_batch_end"),
        "gate": (PlanActivities, "_check_progression"),
        "generate": (PlanActivities, "_generate"),
        "generator": (GenerationActivities, "generate_next_batch"),
    }
    originals = {name: getattr(cls, attr) for name, (cls, attr) in parts.items()}

    def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                # A step is: record (when a batch ended), gate, generate (which runs the generator).
                opens = name == "record" or (name == "gate" and (not steps or set(steps[-1]) != {"record"}))
                if opens or not steps:
                    steps.append({})
                steps[-1][name] = steps[-1].get(name, 0.0) + time.perf_counter() - t0

        return timed

    for name, (cls, attr) in parts.items():
        setattr(cls, attr, wrap(name, originals[name]))
    try:
        yield steps
    finally:
        for name, (cls, attr) in parts.items():
            setattr(cls, attr, originals[name])


def sqlite_bytes(url: str) -> int:
    path = Path(url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def fill(stack: BenchStack, raw: str, table: str, size: int, block: range) -> None:
    """``size`` segment rows, all DONE; outside ``block`` marked purged (no file), inside real files."""
    config = stack.catalog.require_table(table)
    schema = stack.catalog.require_schema(raw)
    manager = SegmentManager.from_settings(stack.settings, stack.catalog)
    marker = filter_marker(FILTER)
    rows: list[dict[str, Any]] = []
    for i in range(size):
        name = f"{raw}_{i:07}"
        if i in block:
            staged = manager.deep_store.staging_path(table)
            make_parquet(staged, i * ROWS, ROWS)
            segment = manager.describe_file(config, schema, staged, name, SegmentStatus.DONE, None, None, 0)
            manager.deep_store.publish(staged, table, segment.file_name)
            manager.store.add_segment(segment)
            continue
        rows.append(
            {
                "table_name": table,
                "segment_name": name,
                "status": "DONE",
                "total_docs": ROWS,
                "size_bytes": 20_000,
                "crc": "0",
                "file_name": f"{name}__gone.parquet",
                "created_ms": 1_700_000_000_000,
                "time_column": "ts",
                "start_time": i * ROWS,
                "end_time": (i + 1) * ROWS - 1,
                "committed_ms": None,
                "source": None,
                "custom_json": json.dumps({marker: "true"}),
            }
        )
    with stack.catalog.engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(segments_table), rows[start : start + 10_000])


def timed_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def one_size(
    stack: BenchStack, http: Any, size: int, pending: int, configs: dict[str, str]
) -> dict[str, Any]:
    raw = new_raw_name("grow")
    stack.catalog.put_schema(Schema.model_validate({"schemaName": raw, **SCHEMA}))
    table = stack.add_table(raw)
    url = stack.settings.resolved_catalog_url
    before = sqlite_bytes(url)
    block = range(size // 2, size // 2 + pending)
    fill(stack, raw, table, size, block)
    catalog_bytes = sqlite_bytes(url) - before

    # In process: the generation of a batch with the cursor in the middle, and the listing it replaces.
    generator = SEGMENT_PURGE.generator()
    generator.init(PluginContext(stack.settings, stack.catalog, DuckDBConfig()))
    config = stack.catalog.require_table(table)
    middle = {"segmentsAfter": f"{raw}_{block.start + pending // 2:07}", "segmentsPass": "1",
              "segmentsFoundInPass": "1", "segmentsTotal": str(pending)}  # fmt: skip
    props = {"purgeFilter": FILTER, **configs}
    generate_ms = timed_ms(
        lambda: generator.generate_next_batch(BatchRequest("p", config, props, 3, middle, 30, None)), 7
    )
    marker = filter_marker(FILTER)

    def listing() -> object:
        visible = stack.catalog.segments.visible_segments(table)
        return [s for s in visible if s.status is SegmentStatus.DONE and marker not in s.custom]

    listing_ms = timed_ms(listing, 3)

    # A real plan over the block.
    with step_timer() as steps:
        plan = await run_plan(stack, table, "SegmentPurgeTask", props)
    assert plan.num_batches >= 2, plan
    totals = [sum(v for k, v in s.items() if k != "generator") * 1000 for s in steps]
    generator_ms = [s.get("generator", 0.0) * 1000 for s in steps]
    query = f"WorkflowType = 'TaskPlan' AND TaskPlanId = '{plan.plan_id}'"
    runs = [run async for run in stack.client.list_workflows(query)]
    assert len(runs) == 1, runs  # a few batches: no continue-as-new
    handle = stack.client.get_workflow_handle(runs[0].id, run_id=runs[0].run_id)
    description = (await handle.describe()).raw_description.workflow_execution_info
    t_segments = []
    for _ in range(3):
        t0 = time.perf_counter()
        response = await http.get(f"/segments/{raw}")
        t_segments.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200
    names = len(response.json()[0]["OFFLINE"])
    assert names == size, names
    SegmentManager.from_settings(stack.settings, stack.catalog).drop_table(table)
    return {
        "segments": size,
        "batches": plan.num_batches,
        "step_ms": totals,
        "generator_ms": generator_ms,
        "step_middle_ms": median(totals[1:-1]),
        "generator_middle_ms": median(generator_ms[1:-1]),
        "step_first_ms": totals[0],
        "step_last_ms": totals[-1],
        "generate_in_process_ms": generate_ms,
        "listing_ms": listing_ms,
        "catalog_rows": size,
        "catalog_bytes": catalog_bytes,
        "history_events": description.history_length,
        "history_bytes": description.history_size_bytes,
        "get_segments_ms": median(t_segments),
        "get_segments_bytes": len(response.content),
    }


async def table_growth(stack: BenchStack, report: Report, full: bool) -> None:
    sizes = (1_000, 10_000, 100_000) if full else (1_000, 10_000, 30_000)
    pending = 100 if full else 60
    # 10 segments a batch (2 subtasks of 5): several batches of a few segments each.
    configs = {"tableMaxNumTasks": "2", "maxNumSegmentsPerTask": "5"}
    stack.start_minions(1)
    results = []
    async with stack.api() as (http, _):
        await one_size(stack, http, 300, 20, configs)  # warm-up (imports, connections, the minion), untimed
        for size in sizes:
            results.append(await one_size(stack, http, size, pending, configs))
    stack.stop_minions()
    first, last = results[0], results[-1]
    ratio = last["step_middle_ms"] / first["step_middle_ms"]
    scale = f"{first['segments']:,} -> {last['segments']:,}"
    for r in results:
        n = f"{r['segments']:,} segments"
        report.add(
            "growth",
            f"{n}: next_batch step, median of the walk's middle steps (generator alone); first / last step",
            f"{r['step_middle_ms']:.1f} ms ({r['generator_middle_ms']:.1f} ms); "
            f"{r['step_first_ms']:.0f} / {r['step_last_ms']:.0f} ms",
        )
        report.add(
            "growth",
            f"{n}: one batch's generation in process (cursor mid-table) vs listing the table as before",
            f"{r['generate_in_process_ms']:.1f} ms vs {r['listing_ms']:.0f} ms",
        )
        report.add(
            "growth",
            f"{n}: catalog rows, bytes; plan history events, bytes per batch ({r['batches']} batches)",
            f"{r['catalog_rows']:,}, {r['catalog_bytes'] / 2**20:.1f} MB "
            f"({r['catalog_bytes'] / r['catalog_rows']:.0f} B/row); "
            f"{r['history_events'] / r['batches']:.0f}, {r['history_bytes'] / r['batches'] / 1024:.1f} KB",
        )
        report.add(
            "growth",
            f"{n}: GET /segments/{{table}} (every name, as Pinot), median of 3",
            f"{r['get_segments_ms']:.0f} ms, {r['get_segments_bytes'] / 1024:.0f} KB",
        )
    report.add(
        "growth",
        f"next_batch step (middle of the walk), {scale} segments",
        f"x{ratio:.2f}",
        "<= 2x",
        ratio <= 2,
    )
    report.data["table_growth"] = results


if __name__ == "__main__":
    from bench.run import main

    main(only="growth")
