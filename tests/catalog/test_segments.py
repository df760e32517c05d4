"""Segment metadata and lineage on SQLite and PostgreSQL: atomic replacement, conflicts, records."""

from __future__ import annotations

import threading

import pytest

from taskplan.catalog import Catalog
from taskplan.catalog.errors import SegmentConflictError
from taskplan.models.segment import LineageState, SegmentMetadata, SegmentStatus

TABLE = "events_OFFLINE"


def seg(name: str, docs: int = 10) -> SegmentMetadata:
    return SegmentMetadata(TABLE, name, SegmentStatus.DONE, docs, 100, "1", f"{name}.parquet", 1)


def visible(catalog: Catalog) -> set[str]:
    return {s.segment_name for s in catalog.segments.visible_segments(TABLE)}


def test_replacement_flips_the_visible_set_at_once(catalog: Catalog) -> None:
    store = catalog.segments
    store.add_segment(seg("s1"))
    store.add_segment(seg("s2"))
    lineage = store.start_replace(TABLE, ["s1"], ["s3"])
    assert visible(catalog) == {"s1", "s2"}
    with pytest.raises(SegmentConflictError, match="not uploaded"):
        store.end_replace(TABLE, lineage)
    store.add_segment(seg("s3"))
    assert visible(catalog) == {"s1", "s2"}  # uploaded, hidden until the end
    assert store.end_replace(TABLE, lineage) == ["s1"]
    assert visible(catalog) == {"s2", "s3"}
    assert store.end_replace(TABLE, lineage) == ["s1"]  # idempotent
    with pytest.raises(SegmentConflictError, match="already completed"):
        store.revert_replace(TABLE, lineage)
    [entry] = store.lineage(TABLE)
    assert (entry.state, entry.segments_from, entry.segments_to) == (LineageState.COMPLETED, ("s1",), ("s3",))


def test_swap_records_the_uploads_completes_and_forgets_the_replaced_in_one_step(catalog: Catalog) -> None:
    store = catalog.segments
    store.add_segment(seg("s1"), processed_file=("file:///in/a.csv", "10-1"))
    store.add_segment(seg("s2"))
    lineage = store.start_replace(TABLE, ["s1"], ["s3"])
    assert store.visible_segments(TABLE, ["s1", "s3", "s2"]) == [seg("s1"), seg("s2")]
    with pytest.raises(SegmentConflictError, match="not a target"):
        store.swap(TABLE, lineage, [seg("s3"), seg("s4")])
    assert visible(catalog) == {"s1", "s2"} and store.get_segment(TABLE, "s3") is None  # nothing applied
    assert store.get_lineage(TABLE, lineage).state == LineageState.IN_PROGRESS  # type: ignore[union-attr]
    with pytest.raises(SegmentConflictError, match="not uploaded"):
        store.swap(TABLE, lineage)
    assert [s.segment_name for s in store.swap(TABLE, lineage, [seg("s3", docs=7)])] == ["s1"]
    assert visible(catalog) == {"s2", "s3"} and store.visible_segments(TABLE, ["s1"]) == []
    assert store.get_segment(TABLE, "s1") is None and store.processed_files(TABLE) == {}
    assert store.visible_segments(TABLE, ["s3"]) == [seg("s3", docs=7)]
    assert store.swap(TABLE, lineage, [seg("s3", docs=99)]) == []  # done already: a retry changes nothing
    assert store.visible_segments(TABLE, ["s3"]) == [seg("s3", docs=7)]
    reverted = store.start_replace(TABLE, ["s2"], ["s5"])
    store.revert_replace(TABLE, reverted)
    with pytest.raises(SegmentConflictError, match="reverted"):
        store.swap(TABLE, reverted, [seg("s5")])
    assert visible(catalog) == {"s2", "s3"}


def test_reverted_replacement_leaves_the_old_set(catalog: Catalog) -> None:
    store = catalog.segments
    store.add_segment(seg("s1"))
    lineage = store.start_replace(TABLE, ["s1"], [], lineage_id="L1")
    store.add_segment(seg("s2"), lineage_id="L1")  # joins the targets
    assert store.get_lineage(TABLE, lineage).segments_to == ("s2",)  # type: ignore[union-attr]
    assert store.revert_replace(TABLE, lineage) == ["s2"]
    assert visible(catalog) == {"s1"}
    with pytest.raises(SegmentConflictError, match="reverted"):
        store.end_replace(TABLE, lineage)
    with pytest.raises(SegmentConflictError, match="REVERTED"):
        store.add_segment(seg("s9"), lineage_id="L1")


def test_conflicting_replacements_are_refused(catalog: Catalog) -> None:
    store = catalog.segments
    store.add_segment(seg("s1"))
    with pytest.raises(SegmentConflictError, match="not visible"):
        store.start_replace(TABLE, ["nope"], ["x"])
    first = store.start_replace(TABLE, ["s1"], ["s2"], lineage_id="A")
    assert store.start_replace(TABLE, ["s1"], ["s2"], lineage_id="A") == first  # same id: idempotent
    with pytest.raises(SegmentConflictError, match="already being replaced"):
        store.start_replace(TABLE, ["s1"], ["s3"], lineage_id="B")


def test_processed_files_and_exports_are_recorded_once(catalog: Catalog) -> None:
    store = catalog.segments
    assert store.add_segment(seg("s1"), processed_file=("file:///in/a.csv", "10-1")) is True
    assert store.add_segment(seg("s1"), processed_file=("file:///in/a.csv", "10-1")) is False  # a retry
    assert store.processed_files(TABLE) == {"file:///in/a.csv": ("10-1", "s1")}
    assert [s.segment_name for s in store.all_segments(TABLE)] == ["s1"]
    assert store.record_export(TABLE, "/out", "s1", 10) is True
    assert store.record_export(TABLE, "/out", "s1", 10) is False
    assert store.record_export(TABLE, "/other", "s1", 10) is True
    assert store.exported(TABLE, "/out") == {"s1"}
    store.delete_segments(TABLE, ["s1"])
    assert store.processed_files(TABLE) == {}


def test_readers_see_the_old_set_or_the_new_never_both_or_neither(catalog: Catalog) -> None:
    store = catalog.segments
    store.add_segment(seg("gen0"))
    seen: list[frozenset[str]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(frozenset(visible(catalog)))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for generation in range(1, 30):
            old, new = f"gen{generation - 1}", f"gen{generation}"
            lineage = store.start_replace(TABLE, [old], [new])
            store.add_segment(seg(new))
            store.end_replace(TABLE, lineage)
            store.delete_segments(TABLE, [old])
    finally:
        stop.set()
        reader.join()
    assert seen and all(len(s) == 1 for s in seen), {s for s in seen if len(s) != 1}
