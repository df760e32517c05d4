"""Walking a table's segments batch after batch, and sizing subtasks by the work in them.

**Sizing.** A subtask costs about 10 ms of orchestration (its activity task, two history events, a workflow
task of the plan), as much as DuckDB takes to rewrite 100,000 rows. So consecutive segments are packed into
one subtask up to ``maxNumRecordsPerTask`` rows (Pinot's MergeRollupTask key; default the property
``taskplan.subtask.maxNumRecordsPerTask``, 1,000,000): ten 100,000-row segments make one subtask, a segment
of 1,000,000 rows or more is one subtask alone. An explicit ``maxNumSegmentsPerTask`` wins: segments are
then packed by count, and by rows only if ``maxNumRecordsPerTask`` is set too.

**Walking.** A plan does not list the table per batch: its cursor (the plan's generation state, kept by
the plan workflow across continue-as-new) holds the name of the last segment the walk went through, and each
batch reads the next pages of segments after it (:meth:`SegmentCatalog.segments_page`: range scans of the
catalog's primary key, ``PAGE_SIZE`` rows a page, pending or not) until its subtasks are full. So a batch
costs the same on a table of 1,000 or 100,000 segments, and segments done already are gone through once.
A pass ends at the last segment; if it handed out anything, another pass starts from the first, which finds
the segments added behind the cursor meanwhile and those a failed batch left (every one of them once more),
and the plan ends with the first pass that finds nothing. A segment removed meanwhile is simply not found.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from taskplan.catalog import Catalog
from taskplan.catalog.segments import SegmentPage
from taskplan.models.segment import SegmentMetadata
from taskplan.plugin import TaskConfigError
from taskplan.settings import Settings
from taskplan.tasktypes.common import int_config

MAX_NUM_SEGMENTS_PER_TASK = "maxNumSegmentsPerTask"
MAX_NUM_RECORDS_PER_TASK = "maxNumRecordsPerTask"
MAX_SEGMENTS_PER_TASK_LIMIT = 1000  # keeps a subtask's config (its segment names) small
MAX_RECORDS_LIMIT = 2**63 - 1
PAGE_SIZE = 500

# The cursor's keys (strings both ways: the plan keeps them in its state).
_AFTER = "segmentsAfter"  # the last segment the walk went through in this pass ("" before the first)
_PASS = "segmentsPass"  # 1, 2, ...
_FOUND = "segmentsFoundInPass"  # "1" once this pass handed out a segment
_TOTAL = "segmentsTotal"  # segments to process, as counted at the start and grown by later passes


@dataclass(frozen=True)
class SubtaskSizing:
    max_segments: int
    max_records: int | None  # None: by count only

    def fits(self, group: Sequence[SegmentMetadata], rows: int, segment: SegmentMetadata) -> bool:
        """Whether ``segment`` joins ``group`` (of ``rows`` rows); a group's first segment always does."""
        if not group:
            return True
        if len(group) >= self.max_segments:
            return False
        return self.max_records is None or rows + segment.total_docs <= self.max_records


def subtask_sizing(configs: Mapping[str, str], settings: Settings | None) -> SubtaskSizing:
    """The task configs' sizing (validated: TaskConfigError naming the key)."""
    segments = int_config(configs, MAX_NUM_SEGMENTS_PER_TASK, None, low=1, high=MAX_SEGMENTS_PER_TASK_LIMIT)
    records = int_config(configs, MAX_NUM_RECORDS_PER_TASK, None, low=1, high=MAX_RECORDS_LIMIT)
    if segments is not None:
        return SubtaskSizing(segments, records)
    default = settings.subtask_max_records if settings is not None else Settings().subtask_max_records
    return SubtaskSizing(MAX_SEGMENTS_PER_TASK_LIMIT, records if records is not None else default)


@dataclass(frozen=True)
class WalkState:
    after: str | None = None
    passes: int = 1
    found: bool = False
    total: int | None = None

    @classmethod
    def of(cls, cursor: Mapping[str, str]) -> WalkState:
        if _PASS not in cursor:
            return cls()
        try:
            return cls(
                after=cursor.get(_AFTER) or None,
                passes=int(cursor[_PASS]),
                found=cursor.get(_FOUND) == "1",
                total=int(cursor[_TOTAL]) if cursor.get(_TOTAL) else None,
            )
        except ValueError:
            raise TaskConfigError(f"the plan's segment cursor is not taskplan's: {dict(cursor)}") from None

    def cursor(self) -> dict[str, str]:
        state = {_AFTER: self.after or "", _PASS: str(self.passes), _FOUND: "1" if self.found else ""}
        if self.total is not None:
            state[_TOTAL] = str(self.total)
        return state


@dataclass(frozen=True)
class Walked:
    """One batch's segments, grouped into subtasks, and where the walk stands after it."""

    groups: list[list[SegmentMetadata]]
    state: WalkState

    @property
    def segments(self) -> int:
        return sum(len(g) for g in self.groups)


Page = Callable[[str | None, int], SegmentPage]


def next_groups(page: Page, state: WalkState, sizing: SubtaskSizing, max_tasks: int) -> Walked:
    """The next batch: at most ``max_tasks`` subtasks of pending segments after the cursor, read page by
    page with ``page(after, limit)``. No groups: the walk is over (a pass found nothing)."""
    groups: list[list[SegmentMetadata]] = []
    group: list[SegmentMetadata] = []
    rows = 0
    after = state.after
    while True:
        found = page(after, PAGE_SIZE)
        for segment in found.segments:
            if not sizing.fits(group, rows, segment):
                groups.append(group)
                group, rows = [], 0
                if len(groups) >= max_tasks:
                    return Walked(groups, replace(state, after=after, found=True))
            group.append(segment)
            rows += segment.total_docs
            after = segment.segment_name
        after = found.last_scanned  # nothing else to hand out up to there
        if not found.at_end:
            continue
        if group:
            groups.append(group)
        if groups:
            return Walked(groups, replace(state, after=after, found=True))
        if not state.found:
            return Walked([], state)
        # The pass handed out segments: the next one starts from the first segment.
        state = replace(state, after=None, passes=state.passes + 1, found=False)
        after = None


def walk_segments(
    catalog: Catalog,
    table: str,
    cursor: Mapping[str, str],
    sizing: SubtaskSizing,
    max_tasks: int,
    *,
    lacking_custom: str | None = None,
    custom_not: tuple[str, str] | None = None,
) -> Walked:
    """The next batch of the table's pending DONE segments (filtered as :meth:`SegmentCatalog.segments_page`
    filters) after the plan's cursor; the plan's first batch counts them once (``inputsToProcess``)."""
    state = WalkState.of(cursor)
    if state.total is None:
        total = catalog.segments.count_segments(table, lacking_custom=lacking_custom, custom_not=custom_not)
        state = replace(state, total=total)

    def page(after: str | None, limit: int) -> SegmentPage:
        return catalog.segments.segments_page(
            table, after=after, limit=limit, lacking_custom=lacking_custom, custom_not=custom_not
        )

    walked = next_groups(page, state, sizing, max_tasks)
    if walked.groups and walked.state.passes > 1:  # found again: added meanwhile, or left by a failure
        grown = (walked.state.total or 0) + walked.segments
        walked = replace(walked, state=replace(walked.state, total=grown))
    return walked
