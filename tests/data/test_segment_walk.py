"""How the segment purge walks a table and sizes its subtasks (taskplan/tasktypes/sizing.py), on SQLite and
PostgreSQL catalogs: keyset pages over the catalog, every segment exactly once across batches while segments
come and go, and subtasks packed by rows up to maxNumRecordsPerTask.

Most segments here are catalog rows only (the generator reads nothing else); a batch's "execution" marks its
segments as a purge does, so a walk over hundreds of segments takes well under a second.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskplan.catalog import Catalog
from taskplan.catalog.segments import SegmentPage
from taskplan.data.parquet import DuckDBConfig
from taskplan.models.segment import LineageState, SegmentMetadata, SegmentStatus
from taskplan.models.table import TableConfig
from taskplan.plugin import BatchGeneration, BatchRequest, PluginContext, TaskConfigError
from taskplan.settings import Settings
from taskplan.tasktypes import sizing
from taskplan.tasktypes.segment_purge import SEGMENT_PURGE, filter_marker
from tests.support.data import events_schema, make_table, run_plan_directly, table_rows

FILTER = "country = 'US'"
MARKER = filter_marker(FILTER)


def settings_with(tmp_path: Path, **props: str) -> Settings:
    return Settings.model_validate({"taskplan.dataDir": str(tmp_path), **props})


def new_table(catalog: Catalog) -> TableConfig:
    return make_table(catalog, f"walk{uuid.uuid4().hex[:8]}")


def add(
    catalog: Catalog, table: TableConfig, name: str, rows: int = 100, custom: Mapping[str, str] | None = None
) -> None:
    catalog.segments.add_segment(
        SegmentMetadata(
            table_name=table.tableName,
            segment_name=name,
            status=SegmentStatus.DONE,
            total_docs=rows,
            size_bytes=rows * 10,
            crc="0",
            file_name=f"{name}.parquet",
            created_ms=1,
            custom=dict(custom or {}),
        )
    )


def generator(settings: Settings, catalog: Catalog) -> Any:
    gen = SEGMENT_PURGE.generator()
    gen.init(PluginContext(settings=settings, catalog=catalog, duckdb_config=DuckDBConfig()))
    return gen


class Walk:
    """Drives the generator as the plan workflow does (the cursor and the inputs processed carried from
    batch to batch) and "executes" a batch by marking its segments purged."""

    def __init__(self, settings: Settings, catalog: Catalog, table: TableConfig, configs: Mapping[str, str]):
        self.gen = generator(settings, catalog)
        self.catalog, self.table, self.configs = catalog, table, {"purgeFilter": FILTER, **configs}
        self.cursor: Mapping[str, str] = {}
        self.processed = 0
        self.sequence = 0
        self.handed_out: list[str] = []

    def next(self) -> BatchGeneration:
        batch: BatchGeneration = self.gen.generate_next_batch(
            BatchRequest("plan", self.table, self.configs, self.sequence, self.cursor, self.processed, None)
        )
        self.cursor = dict(batch.cursor)
        self.processed += batch.inputs_in_batch
        self.sequence += 1
        return batch

    def groups(self, batch: BatchGeneration) -> list[list[str]]:
        return [t.configs["segmentName"].split(",") for t in batch.subtasks]

    def execute(self, batch: BatchGeneration, *, fail: frozenset[str] = frozenset()) -> None:
        names = [n for g in self.groups(batch) for n in g]
        self.handed_out.extend(names)
        done = [
            s for s in self.catalog.segments.all_segments(self.table.tableName) if s.segment_name in names
        ]
        self.catalog.segments.update_segments(
            [replace(s, custom={**s.custom, MARKER: "true"}) for s in done if s.segment_name not in fail]
        )

    def run(self, max_batches: int = 1000) -> int:
        for batches in range(max_batches):
            batch = self.next()
            if batch.no_more_work:
                return batches
            self.execute(batch)
        raise AssertionError("the walk did not end")


def test_segments_page_is_a_keyset_page_of_pending_visible_segments(catalog: Catalog) -> None:
    table = new_table(catalog)
    for i in range(7):
        add(catalog, table, f"s{i}", custom={MARKER: "true"} if i == 2 else None)
    add(catalog, table, "s7", custom={"other": "x"})
    consuming = replace(catalog.segments.visible_segments(table.tableName, ["s0"])[0], segment_name="s8")
    catalog.segments.add_segment(replace(consuming, status=SegmentStatus.IN_PROGRESS))
    # s4 is being replaced: its target is hidden until the replacement completes, then s4 is.
    catalog.segments.start_replace(table.tableName, ["s4"], ["s4x"], lineage_id="l1")
    add(catalog, table, "s4x")
    pages = catalog.segments

    def names(after: str | None, limit: int) -> tuple[list[str], str | None, bool]:
        got = pages.segments_page(table.tableName, after=after, limit=limit, lacking_custom=MARKER)
        return [s.segment_name for s in got.segments], got.last_scanned, got.at_end

    # A page goes through `limit` rows (s4x hidden, s2 marked, s8 consuming: gone through, not returned).
    assert names(None, 3) == (["s0", "s1"], "s2", False)
    assert names("s2", 3) == (["s3", "s4"], "s4x", False)
    assert names("s4x", 3) == (["s5", "s6", "s7"], "s7", False)
    assert names("s7", 3) == ([], "s8", True)
    assert names("s8", 3) == ([], "s8", True)
    assert pages.count_segments(table.tableName, lacking_custom=MARKER) == 7
    assert pages.count_segments(table.tableName, lacking_custom="other") == 7  # s0-s6, with s4
    catalog.segments.swap(table.tableName, "l1")
    assert names("s3", 3) == (["s4x", "s5", "s6"], "s6", False)  # the swap forgot s4
    everything = pages.segments_page(table.tableName, after=None, limit=10, status=None)
    assert [s.segment_name for s in everything.segments][-1] == "s8" and everything.at_end
    # custom_not: a value other than this one, or none (AlterTableTask's signature).
    differs = pages.segments_page(table.tableName, after=None, limit=20, custom_not=("other", "x")).segments
    assert [s.segment_name for s in differs] == ["s0", "s1", "s2", "s3", "s4x", "s5", "s6"]
    assert pages.count_segments(table.tableName, custom_not=("other", "y")) == 8
    with pytest.raises(ValueError, match="quote"):
        pages.segments_page(table.tableName, after=None, limit=1, lacking_custom='a"b')


def test_subtasks_are_sized_by_rows(catalog: Catalog, tmp_path: Path) -> None:
    table = new_table(catalog)
    for i, rows in enumerate([400, 400, 300, 200, 2500, 100, 100, 100, 100, 100, 100, 100]):
        add(catalog, table, f"seg{i:02}", rows)
    settings = settings_with(tmp_path, **{"taskplan.subtask.maxNumRecordsPerTask": "1000"})

    walk = Walk(settings, catalog, table, {})
    batch = walk.next()
    # Consecutive segments up to 1,000 rows; the 2,500-row segment alone.
    assert walk.groups(batch) == [
        ["seg00", "seg01"],
        ["seg02", "seg03"],
        ["seg04"],
        [f"seg{i:02}" for i in range(5, 12)],
    ]
    assert (batch.inputs_in_batch, batch.inputs_to_process) == (12, 12)

    # The task config overrides the property; tableMaxNumTasks still caps the batch.
    walk = Walk(settings, catalog, table, {"maxNumRecordsPerTask": "500", "tableMaxNumTasks": "3"})
    assert walk.groups(walk.next()) == [["seg00"], ["seg01"], ["seg02", "seg03"]]
    assert walk.groups(walk.next()) == [["seg04"], [f"seg{i:02}" for i in range(5, 10)], ["seg10", "seg11"]]

    # An explicit maxNumSegmentsPerTask wins: by count, and by rows only if maxNumRecordsPerTask is set.
    walk = Walk(settings, catalog, table, {"maxNumSegmentsPerTask": "3", "tableMaxNumTasks": "2"})
    assert walk.groups(walk.next()) == [["seg00", "seg01", "seg02"], ["seg03", "seg04", "seg05"]]
    both = {"maxNumSegmentsPerTask": "3", "maxNumRecordsPerTask": "500", "tableMaxNumTasks": "2"}
    walk = Walk(settings, catalog, table, both)
    assert walk.groups(walk.next()) == [["seg00"], ["seg01"]]

    # The default property: 1,000,000 rows, so all twelve go in one subtask.
    walk = Walk(settings_with(tmp_path), catalog, table, {})
    assert walk.groups(walk.next()) == [[f"seg{i:02}" for i in range(12)]]


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("maxNumRecordsPerTask", "0"),
        ("maxNumRecordsPerTask", "ten"),
        ("maxNumRecordsPerTask", "-5"),
        ("maxNumSegmentsPerTask", "1001"),
    ],
)
def test_bad_sizing_configs_are_refused_naming_the_key(
    catalog: Catalog, tmp_path: Path, key: str, bad: str
) -> None:
    table = new_table(catalog)
    gen = generator(settings_with(tmp_path), catalog)
    with pytest.raises(TaskConfigError, match=key):
        gen.validate_task_configs(
            table, events_schema(table.raw_table_name), {"purgeFilter": FILTER, key: bad}
        )


def test_the_walk_hands_out_every_segment_once_while_segments_come_and_go(
    catalog: Catalog, tmp_path: Path
) -> None:
    table = new_table(catalog)
    for i in range(0, 100, 2):  # seg000, seg002, ... seg098: gaps to add segments into
        add(catalog, table, f"seg{i:03}")
    walk = Walk(
        settings_with(tmp_path), catalog, table, {"maxNumRecordsPerTask": "500", "tableMaxNumTasks": "2"}
    )

    first = walk.next()  # seg000-seg008, seg010-seg018
    assert walk.groups(first)[0][0] == "seg000" and walk.groups(first)[-1][-1] == "seg018"
    assert (first.inputs_in_batch, first.inputs_to_process) == (10, 50)
    walk.execute(first)
    add(catalog, table, "seg001")  # behind the cursor: found by the second pass
    add(catalog, table, "seg051")  # ahead of it: found in this pass
    catalog.segments.delete_segments(table.tableName, ["seg060", "seg062"])  # removed ahead: never handed out
    second = walk.next()
    walk.execute(second, fail=frozenset({"seg024"}))  # a failed subtask leaves its segment pending
    batches = 2 + walk.run()

    expected = {f"seg{i:03}" for i in range(0, 100, 2)} - {"seg060", "seg062"} | {"seg001", "seg051"}
    # Each once, but seg024, handed out again by the second pass after its failure.
    assert sorted(walk.handed_out) == sorted([*expected, "seg024"])
    assert walk.handed_out.count("seg024") == 2
    assert walk.handed_out[-2:] == ["seg001", "seg024"]  # the second pass, in one batch
    assert catalog.segments.count_segments(table.tableName, lacking_custom=MARKER) == 0
    assert batches == 6  # 49 segments at 10 a batch, then the second pass's batch
    assert walk.processed == 51


def test_the_walk_reads_pages_not_the_table(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch reads pages after its cursor, never the whole table; a run of segments done already is gone
    through once. (Pages of 50 rows and subtasks of at most 100 segments here, 500 and 1,000 in use.)"""
    monkeypatch.setattr(sizing, "PAGE_SIZE", 50)
    monkeypatch.setattr(sizing, "MAX_SEGMENTS_PER_TASK_LIMIT", 100)
    table = new_table(catalog)
    for i in range(120):
        add(catalog, table, f"seg{i:05}", rows=1000)
    read: list[tuple[str | None, int]] = []
    segments_page = type(catalog.segments).segments_page

    def spy(self: Any, table_name: str, **kw: Any) -> SegmentPage:
        got = segments_page(self, table_name, **kw)
        read.append((kw["after"], len(got.segments)))
        return got

    monkeypatch.setattr(type(catalog.segments), "segments_page", spy)
    monkeypatch.setattr(type(catalog.segments), "visible_segments", None)  # no listing of the table
    walk = Walk(settings_with(tmp_path), catalog, table, {})  # by rows: 1,000,000 a subtask
    groups = walk.groups(walk.next())
    assert [len(g) for g in groups] == [100, 20]  # at most MAX_SEGMENTS_PER_TASK_LIMIT a subtask
    assert read == [(None, 50), ("seg00049", 50), ("seg00099", 20)]
    read.clear()
    walk.cursor = {**walk.cursor, "segmentsAfter": "seg00050"}
    walk.next()
    assert read == [("seg00050", 50), ("seg00100", 19)]

    done = catalog.segments.all_segments(table.tableName)[:110]
    catalog.segments.update_segments([replace(s, custom={MARKER: "true"}) for s in done])
    read.clear()
    walk.cursor = {**walk.cursor, "segmentsAfter": "seg00001"}
    batch = walk.next()
    assert walk.groups(batch) == [[f"seg{i:05}" for i in range(110, 120)]]
    assert read == [("seg00001", 0), ("seg00051", 0), ("seg00101", 10)]
    assert walk.cursor["segmentsAfter"] == "seg00119"
    walk.execute(batch)
    read.clear()
    assert walk.next().no_more_work  # the end of the pass, then a second pass that finds nothing
    assert read == [("seg00119", 0), (None, 0), ("seg00049", 0), ("seg00099", 0)]


def test_a_real_purge_walks_its_purged_copies_once(catalog: Catalog, tmp_path: Path) -> None:
    """Purged copies are named after their segment (``<name>__p<hash>``), so they sort right behind it; they
    carry the marker and are never handed out again."""
    from taskplan.data.segments import SegmentManager
    from tests.support.data import event

    for sub in ("input", "export"):
        (tmp_path / sub).mkdir()
    settings = settings_with(tmp_path, **{"taskplan.subtask.maxNumRecordsPerTask": "8"})
    manager = SegmentManager.from_settings(settings, catalog)
    table = new_table(catalog)
    schema = events_schema(table.raw_table_name)
    for s in range(5):
        manager.upload(
            table, schema, [event(s * 10 + i, "US" if i % 2 else "FR") for i in range(4)], f"seg{s}"
        )
    run = run_plan_directly(SEGMENT_PURGE, settings, catalog, table, {"purgeFilter": FILTER})
    assert run.batches == 1 and [r.counts["segmentsPurged"] for r in run.results] == [2, 2, 1]
    assert run.total("rowsPurged") == 10 and len(table_rows(manager, table.tableName)) == 10
    assert {e.state for e in catalog.segments.lineage(table.tableName)} == {LineageState.COMPLETED}
