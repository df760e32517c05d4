"""Segment metadata and segment lineage in the catalog (SQL only; files live in the deep store).

Why one module past 400 lines: every write below takes the same per-table write transaction, and the
lineage decides visibility in the same SQL the segment reads use; one class keeps that protocol in one place.

Which segments a reader sees is decided in one SQL statement from the lineage, Pinot's way: a segment is
hidden while it is the target of an IN_PROGRESS (or REVERTED) replacement, and once it is the source of a
COMPLETED one. So a replacement is atomic for readers: the flip from IN_PROGRESS to COMPLETED is a single
row update, and every read sees the old set or the new set, never both or neither.

Writes that check then change (start a replacement, add a segment to one) run in a write transaction that
serialises writers of the table: ``BEGIN IMMEDIATE`` on SQLite, an advisory transaction lock on PostgreSQL.

A REALTIME table's consuming segment is rewritten whole by every append, so its row is replaced by
compare-and-swap (:meth:`SegmentCatalog.put_consuming`): the file name, new for every version, is the
version checked. Writers that know which incarnation of the table they write for (its ``created_ms``) have it
checked in the same transaction, so nothing is recorded for a table dropped (or dropped and created again)
meanwhile; a drop takes the same lock (:meth:`SegmentCatalog.drop_table`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, and_, cast, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from taskplan.catalog.deletions import record_deletion
from taskplan.catalog.errors import (
    LineageNotFoundError,
    SegmentConflictError,
    TableDroppedError,
    TableNotFoundError,
)
from taskplan.catalog.schema import (
    exported_segments,
    lineage_segments,
    processed_files,
    segment_lineage,
    segments,
    tables,
    task_metadata,
)
from taskplan.clock import now_ms
from taskplan.models.segment import (
    LineageEntry,
    LineageState,
    SegmentMetadata,
    SegmentSpan,
    SegmentStatus,
)

if TYPE_CHECKING:
    from taskplan.catalog.catalog import Catalog


class DroppedTable(NamedTuple):
    segments: list[SegmentMetadata]
    deletion_id: str | None  # the pending deletion recorded with the drop (taskplan/catalog/deletions.py)


def _segment_row(segment: SegmentMetadata) -> dict[str, Any]:
    """A segment as its catalog row."""
    return {
        "table_name": segment.table_name,
        "segment_name": segment.segment_name,
        "status": segment.status.value,
        "total_docs": segment.total_docs,
        "size_bytes": segment.size_bytes,
        "crc": segment.crc,
        "file_name": segment.file_name,
        "created_ms": segment.created_ms,
        "time_column": segment.time_column,
        "start_time": segment.start_time,
        "end_time": segment.end_time,
        "committed_ms": segment.committed_ms,
        "source": segment.source,
        "custom_json": json.dumps(segment.custom, sort_keys=True),
    }


def _segment(row: Any) -> SegmentMetadata:
    return SegmentMetadata(
        table_name=row.table_name,
        segment_name=row.segment_name,
        status=SegmentStatus(row.status),
        total_docs=row.total_docs,
        size_bytes=row.size_bytes,
        crc=row.crc,
        file_name=row.file_name,
        created_ms=row.created_ms,
        time_column=row.time_column,
        start_time=row.start_time,
        end_time=row.end_time,
        committed_ms=row.committed_ms,
        source=row.source,
        custom=json.loads(row.custom_json),
    )


def _lineage_entry(row: Any, members: Sequence[Any]) -> LineageEntry:
    return LineageEntry(
        lineage_id=row.lineage_id,
        state=LineageState(row.state),
        owner=row.owner,
        segments_from=tuple(sorted(m.segment_name for m in members if m.role == "from")),
        segments_to=tuple(sorted(m.segment_name for m in members if m.role == "to")),
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
    )


def _membership() -> Any:
    """Lineage members joined with their lineage entry (for its state)."""
    return lineage_segments.join(
        segment_lineage,
        and_(
            segment_lineage.c.table_name == lineage_segments.c.table_name,
            segment_lineage.c.lineage_id == lineage_segments.c.lineage_id,
        ),
    )


def _hidden_by_lineage() -> Any:
    """SQL condition: the segment row is hidden by the lineage."""
    return exists(
        select(1)
        .select_from(_membership())
        .where(
            lineage_segments.c.table_name == segments.c.table_name,
            lineage_segments.c.segment_name == segments.c.segment_name,
            or_(
                and_(
                    lineage_segments.c.role == "to",
                    segment_lineage.c.state.in_([LineageState.IN_PROGRESS, LineageState.REVERTED]),
                ),
                and_(lineage_segments.c.role == "from", segment_lineage.c.state == LineageState.COMPLETED),
            ),
        )
    )


class SegmentPage(NamedTuple):
    """A page of :meth:`SegmentCatalog.segments_page`: the matching segments, the name of the last row it
    went through (where the next page starts), and whether no row follows."""

    segments: list[SegmentMetadata]
    last_scanned: str | None
    at_end: bool


class SegmentCatalog:
    def __init__(self, catalog: Catalog) -> None:
        self.engine = catalog.engine
        self._append_locks: dict[str, threading.Lock] = {}
        self._append_locks_guard = threading.Lock()

    def append_lock(self, table: str) -> threading.Lock:
        """Serialises this process's appends to the table's consuming segment. They would only lose races
        to each other and redo their work; the compare-and-swap keeps appends of several processes right."""
        with self._append_locks_guard:
            return self._append_locks.setdefault(table, threading.Lock())

    @contextlib.contextmanager
    def _write(self, table: str) -> Iterator[Connection]:
        """A transaction that serialises the table's segment writers (see the module docstring)."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(table.encode()) - 2**31}
                )
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    # ---------------------------------------------------------------- reads

    def visible_segments(self, table: str, names: Collection[str] | None = None) -> list[SegmentMetadata]:
        """The table's visible segments (not hidden by a replacement), or those of them named in ``names``."""
        query = select(segments).where(segments.c.table_name == table, ~_hidden_by_lineage())
        if names is not None:
            query = query.where(segments.c.segment_name.in_(sorted(set(names))))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(segments.c.segment_name)).all()
        return [_segment(r) for r in rows]

    def segments_page(
        self,
        table: str,
        *,
        after: str | None,
        limit: int,
        status: SegmentStatus | None = SegmentStatus.DONE,
        lacking_custom: str | None = None,
        custom_not: tuple[str, str] | None = None,
    ) -> SegmentPage:
        """A keyset page: the next ``limit`` segment rows of the table named after ``after`` (from the first
        with None), of which those visible, with ``status``, without the key ``lacking_custom`` in their
        custom map and without the (key, value) ``custom_not`` in it, in name order. Two range scans of the
        primary key from ``after``, over ``limit`` rows at most whatever rows match: a page costs the same
        on a table of any size, also where it holds long runs of segments that do not match."""
        window = select(segments.c.segment_name).where(segments.c.table_name == table)
        query = self._pending_query(table, status, lacking_custom, custom_not)
        if after is not None:
            window = window.where(segments.c.segment_name > after)
            query = query.where(segments.c.segment_name > after)
        with self.engine.connect() as conn:
            names = conn.execute(window.order_by(segments.c.segment_name).limit(limit)).scalars().all()
            if not names:
                return SegmentPage([], after, at_end=True)
            query = query.where(segments.c.segment_name <= names[-1])
            rows = conn.execute(query.order_by(segments.c.segment_name)).all()
        return SegmentPage([_segment(r) for r in rows], names[-1], at_end=len(names) < limit)

    def count_segments(
        self,
        table: str,
        *,
        status: SegmentStatus | None = SegmentStatus.DONE,
        lacking_custom: str | None = None,
        custom_not: tuple[str, str] | None = None,
    ) -> int:
        """How many segments :meth:`segments_page` walks through from the start."""
        query = self._pending_query(table, status, lacking_custom, custom_not)
        query = query.with_only_columns(func.count())
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def _pending_query(
        self,
        table: str,
        status: SegmentStatus | None,
        lacking_custom: str | None,
        custom_not: tuple[str, str] | None,
    ) -> Any:
        query = select(segments).where(segments.c.table_name == table, ~_hidden_by_lineage())
        if status is not None:
            query = query.where(segments.c.status == status)
        if lacking_custom is not None:
            query = query.where(self._custom_value(lacking_custom).is_(None))
        if custom_not is not None:
            key, value = custom_not
            query = query.where(self._custom_value(key).is_distinct_from(value))
        return query

    def _custom_value(self, key: str) -> Any:
        """SQL: the segment's custom map (JSON text) value of ``key`` as text, NULL without the key."""
        if '"' in key or "\\" in key:
            raise ValueError(f"custom map key {key!r} cannot hold a quote or a backslash here")
        if self.engine.dialect.name == "postgresql":
            return cast(segments.c.custom_json, JSONB).op("->>")(key)
        return func.json_extract(segments.c.custom_json, f'$."{key}"')

    def segment_spans(self, table: str, *, visible_only: bool) -> list[SegmentSpan]:
        """Name, status and time range of each of the table's segments (only the visible ones with
        ``visible_only``), in name order: what ``GET /segments/{table}`` lists, without whole rows."""
        columns = (segments.c.segment_name, segments.c.status, segments.c.start_time, segments.c.end_time)
        query = select(*columns).where(segments.c.table_name == table)
        if visible_only:
            query = query.where(~_hidden_by_lineage())
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(segments.c.segment_name)).all()
        return [SegmentSpan(r[0], SegmentStatus(r[1]), r[2], r[3]) for r in rows]

    def all_segments(self, table: str) -> list[SegmentMetadata]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(segments).where(segments.c.table_name == table).order_by(segments.c.segment_name)
            ).all()
        return [_segment(r) for r in rows]

    def get_segment(self, table: str, name: str) -> SegmentMetadata | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(segments).where(segments.c.table_name == table, segments.c.segment_name == name)
            ).first()
        return None if row is None else _segment(row)

    def consuming_segment(self, table: str) -> SegmentMetadata | None:
        """The REALTIME table's consuming (IN_PROGRESS) segment, if it has one."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(segments)
                .where(segments.c.table_name == table, segments.c.status == SegmentStatus.IN_PROGRESS)
                .order_by(segments.c.segment_name)
            ).first()
        return None if row is None else _segment(row)

    def table_created_ms(self, table: str, *, settled: bool = False) -> int | None:
        """When the table was created: which incarnation of it a writer writes for (None: no such table).
        ``settled``: read under the table's write lock, so a drop under way has ended first."""
        query = select(tables.c.created_ms).where(tables.c.name_with_type == table)
        with self._write(table) if settled else self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else int(value)

    def lineage(self, table: str) -> list[LineageEntry]:
        with self.engine.connect() as conn:
            entries = conn.execute(
                select(segment_lineage)
                .where(segment_lineage.c.table_name == table)
                .order_by(segment_lineage.c.created_ms, segment_lineage.c.lineage_id)
            ).all()
            members = conn.execute(
                select(lineage_segments).where(lineage_segments.c.table_name == table)
            ).all()
        return [_lineage_entry(e, [m for m in members if m.lineage_id == e.lineage_id]) for e in entries]

    def get_lineage(self, table: str, lineage_id: str) -> LineageEntry | None:
        with self.engine.connect() as conn:
            try:
                return self._entry(conn, table, lineage_id)
            except LineageNotFoundError:
                return None

    def processed_files(self, table: str) -> dict[str, tuple[str, str]]:
        """Input file URI -> (fingerprint, segment name) for the table's ingested files."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(processed_files).where(processed_files.c.table_name == table)).all()
        return {r.file_uri: (r.fingerprint, r.segment_name) for r in rows}

    def exported(self, table: str, target: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(exported_segments.c.segment_name).where(
                    exported_segments.c.table_name == table, exported_segments.c.target == target
                )
            ).all()
        return {r[0] for r in rows}

    # ---------------------------------------------------------------- writes

    def add_segment(
        self,
        segment: SegmentMetadata,
        *,
        lineage_id: str | None = None,
        processed_file: tuple[str, str] | None = None,
        table_created_ms: int | None = None,
    ) -> bool:
        """Record an uploaded segment (replacing a row of the same name). False if it was there already.

        With ``lineage_id`` the segment joins that IN_PROGRESS replacement's targets (hidden until it
        completes). With ``processed_file`` (uri, fingerprint) the input file is recorded in the same
        transaction, so a file and its segment are ingested together or not at all. With
        ``table_created_ms`` nothing is recorded, and TableDroppedError raised, unless the table is still
        that incarnation.
        """
        table = segment.table_name
        with self._write(table) as conn:
            _check_incarnation(conn, table, table_created_ms)
            if lineage_id is not None:
                state = conn.execute(
                    select(segment_lineage.c.state).where(
                        segment_lineage.c.table_name == table, segment_lineage.c.lineage_id == lineage_id
                    )
                ).scalar()
                if state != LineageState.IN_PROGRESS:
                    raise SegmentConflictError(
                        f"segment lineage {lineage_id} of {table} is {state or 'missing'}, not IN_PROGRESS: "
                        f"segment {segment.segment_name} cannot join it"
                    )
                _insert_ignore(
                    conn,
                    lineage_segments,
                    table_name=table,
                    lineage_id=lineage_id,
                    role="to",
                    segment_name=segment.segment_name,
                )
            existed = _upsert_segment(conn, segment)
            if processed_file is not None:
                uri, fingerprint = processed_file
                _put_processed_file(conn, table, uri, fingerprint, segment.segment_name)
        return not existed

    def update_segments(self, updated: Sequence[SegmentMetadata]) -> None:
        """Rewrite existing segments' metadata (of one table) in one transaction."""
        if not updated:
            return
        tables = {s.table_name for s in updated}
        if len(tables) > 1:
            raise ValueError(f"update_segments takes segments of one table, got {sorted(tables)}")
        with self._write(updated[0].table_name) as conn:
            for segment in updated:
                row = _segment_row(segment)
                conn.execute(
                    update(segments)
                    .where(
                        segments.c.table_name == segment.table_name,
                        segments.c.segment_name == segment.segment_name,
                    )
                    .values(**{k: v for k, v in row.items() if k not in ("table_name", "segment_name")})
                )

    def put_consuming(
        self, segment: SegmentMetadata, *, replaces: str | None, table_created_ms: int | None = None
    ) -> bool:
        """Compare-and-swap of the table's consuming segment: record ``segment`` (a new version of the
        consuming segment whose file is ``replaces``, or with ``replaces=None`` the first consuming segment)
        only if that is still the table's consuming segment (or it still has none). False if another writer
        got there first: nothing changed. ``segment`` may be DONE already (committed by this append).
        ``table_created_ms``: as for :meth:`add_segment`."""
        table = segment.table_name
        with self._write(table) as conn:
            _check_incarnation(conn, table, table_created_ms)
            current = conn.execute(
                select(segments.c.segment_name, segments.c.file_name).where(
                    segments.c.table_name == table, segments.c.status == SegmentStatus.IN_PROGRESS
                )
            ).all()
            if replaces is None:
                taken = conn.execute(
                    select(segments.c.segment_name).where(
                        segments.c.table_name == table, segments.c.segment_name == segment.segment_name
                    )
                ).first()
                if current or taken is not None:
                    return False
                conn.execute(insert(segments).values(**_segment_row(segment)))
                return True
            if [(r.segment_name, r.file_name) for r in current] != [(segment.segment_name, replaces)]:
                return False
            row = _segment_row(segment)
            conn.execute(
                update(segments)
                .where(
                    segments.c.table_name == table,
                    segments.c.segment_name == segment.segment_name,
                    segments.c.file_name == replaces,
                )
                .values(**{k: v for k, v in row.items() if k not in ("table_name", "segment_name")})
            )
            return True

    def commit_consuming(self, segment: SegmentMetadata) -> bool:
        """Mark the consuming segment DONE as ``segment`` says, if it is still that version (its file) and
        still consuming; False if an append or another commit changed it first."""
        with self._write(segment.table_name) as conn:
            result = conn.execute(
                update(segments)
                .where(
                    segments.c.table_name == segment.table_name,
                    segments.c.segment_name == segment.segment_name,
                    segments.c.file_name == segment.file_name,
                    segments.c.status == SegmentStatus.IN_PROGRESS,
                )
                .values(status=SegmentStatus.DONE.value, committed_ms=segment.committed_ms)
            )
            return bool(result.rowcount)

    def start_replace(
        self,
        table: str,
        segments_from: Sequence[str],
        segments_to: Sequence[str] = (),
        *,
        lineage_id: str | None = None,
        owner: str = "",
    ) -> str:
        """Open a replacement of ``segments_from`` (all visible now) by ``segments_to`` (uploaded later).

        Idempotent for a given ``lineage_id``: starting it again while IN_PROGRESS returns it unchanged.
        """
        lineage_id = lineage_id or uuid.uuid4().hex
        with self._write(table) as conn:
            state = conn.execute(
                select(segment_lineage.c.state).where(
                    segment_lineage.c.table_name == table, segment_lineage.c.lineage_id == lineage_id
                )
            ).scalar()
            if state is not None:
                if state != LineageState.IN_PROGRESS:
                    raise SegmentConflictError(f"segment lineage {lineage_id} of {table} is already {state}")
                return lineage_id
            wanted = set(segments_from)
            visible = {
                r[0]
                for r in conn.execute(
                    select(segments.c.segment_name).where(
                        segments.c.table_name == table,
                        segments.c.segment_name.in_(wanted),
                        ~_hidden_by_lineage(),
                    )
                )
            }
            if visible != wanted:
                raise SegmentConflictError(
                    f"cannot replace segments of {table} that are not visible: {sorted(wanted - visible)}"
                )
            busy = conn.execute(
                select(lineage_segments.c.segment_name)
                .select_from(_membership())
                .where(
                    lineage_segments.c.table_name == table,
                    lineage_segments.c.role == "from",
                    lineage_segments.c.segment_name.in_(wanted),
                    segment_lineage.c.state == LineageState.IN_PROGRESS,
                )
            ).all()
            if busy:
                raise SegmentConflictError(
                    f"segments of {table} already being replaced: {sorted(r[0] for r in busy)}"
                )
            stamp = now_ms()
            conn.execute(
                insert(segment_lineage).values(
                    table_name=table,
                    lineage_id=lineage_id,
                    state=LineageState.IN_PROGRESS,
                    owner=owner,
                    created_ms=stamp,
                    updated_ms=stamp,
                )
            )
            for role, names in (("from", wanted), ("to", set(segments_to))):
                for name in sorted(names):
                    conn.execute(
                        insert(lineage_segments).values(
                            table_name=table, lineage_id=lineage_id, role=role, segment_name=name
                        )
                    )
        return lineage_id

    def end_replace(self, table: str, lineage_id: str) -> list[str]:
        """Complete the replacement (idempotent): its targets become visible and its sources hidden at once.

        Returns the retired source segments (their files can go)."""
        with self._write(table) as conn:
            return list(self._end_replace(conn, table, self._entry(conn, table, lineage_id)).segments_from)

    def swap(
        self,
        table: str,
        lineage_id: str,
        uploaded: Sequence[SegmentMetadata] = (),
        successors: Mapping[str, str | None] | None = None,
    ) -> list[SegmentMetadata]:
        """In one transaction: record the replacement's ``uploaded`` targets, complete it (idempotent) and
        forget the segments it replaced; returns those (their files can go once this has committed).

        ``successors`` is for a rewrite (purge, merge, schema change): a replaced segment's rows live on in
        the target it names, so the input files recorded as ingested into it stay ingested, now into that
        target (None: into no segment, all their rows gone). Without it (an ingestion's own replacement) the
        replaced segments' file records go with them."""
        with self._write(table) as conn:
            entry = self._entry(conn, table, lineage_id)
            for source, target in (successors or {}).items():
                if source not in entry.segments_from or target not in (*entry.segments_to, None):
                    raise SegmentConflictError(
                        f"{source} -> {target} is not a replacement of {lineage_id} of {table}"
                    )
            if entry.state == LineageState.IN_PROGRESS:
                for segment in uploaded:
                    if segment.table_name != table or segment.segment_name not in entry.segments_to:
                        raise SegmentConflictError(
                            f"segment {segment.segment_name} is not a target of replacement {lineage_id} "
                            f"of {table}"
                        )
                _upsert_segments(conn, table, uploaded)
            self._end_replace(conn, table, entry)
            for source, target in (successors or {}).items():
                conn.execute(
                    update(processed_files)
                    .where(processed_files.c.table_name == table, processed_files.c.segment_name == source)
                    .values(segment_name=target or "")
                )
            return self._delete_segments(conn, table, entry.segments_from)

    def _end_replace(self, conn: Connection, table: str, entry: LineageEntry) -> LineageEntry:
        if entry.state == LineageState.REVERTED:
            raise SegmentConflictError(f"segment lineage {entry.lineage_id} of {table} was reverted")
        if entry.state == LineageState.IN_PROGRESS:
            present = {
                r[0]
                for r in conn.execute(
                    select(segments.c.segment_name).where(
                        segments.c.table_name == table, segments.c.segment_name.in_(entry.segments_to)
                    )
                )
            }
            missing = sorted(set(entry.segments_to) - present)
            if missing:
                raise SegmentConflictError(
                    f"cannot end replacement {entry.lineage_id} of {table}: segments not uploaded: {missing}"
                )
            self._set_state(conn, table, entry.lineage_id, LineageState.COMPLETED)
        return entry

    def revert_replace(self, table: str, lineage_id: str) -> list[str]:
        """Abandon the replacement (idempotent): sources stay visible; returns the targets to delete."""
        with self._write(table) as conn:
            entry = self._entry(conn, table, lineage_id)
            if entry.state == LineageState.COMPLETED:
                raise SegmentConflictError(f"segment lineage {lineage_id} of {table} already completed")
            if entry.state == LineageState.IN_PROGRESS:
                self._set_state(conn, table, lineage_id, LineageState.REVERTED)
        return list(entry.segments_to)

    def _entry(self, conn: Connection, table: str, lineage_id: str) -> LineageEntry:
        row = conn.execute(
            select(segment_lineage).where(
                segment_lineage.c.table_name == table, segment_lineage.c.lineage_id == lineage_id
            )
        ).first()
        if row is None:
            raise LineageNotFoundError(table, lineage_id)
        members = conn.execute(
            select(lineage_segments).where(
                lineage_segments.c.table_name == table, lineage_segments.c.lineage_id == lineage_id
            )
        ).all()
        return _lineage_entry(row, members)

    def _set_state(self, conn: Connection, table: str, lineage_id: str, state: LineageState) -> None:
        conn.execute(
            update(segment_lineage)
            .where(segment_lineage.c.table_name == table, segment_lineage.c.lineage_id == lineage_id)
            .values(state=state, updated_ms=now_ms())
        )

    def delete_segments(self, table: str, names: Iterable[str]) -> list[SegmentMetadata]:
        """Forget segments (and the input files recorded as ingested into them); returns what was deleted."""
        if not names:
            return []
        with self._write(table) as conn:
            return self._delete_segments(conn, table, names)

    def _delete_segments(self, conn: Connection, table: str, names: Iterable[str]) -> list[SegmentMetadata]:
        wanted = sorted(set(names))
        if not wanted:
            return []
        rows = conn.execute(
            select(segments).where(segments.c.table_name == table, segments.c.segment_name.in_(wanted))
        ).all()
        conn.execute(
            delete(segments).where(segments.c.table_name == table, segments.c.segment_name.in_(wanted))
        )
        conn.execute(
            delete(processed_files).where(
                processed_files.c.table_name == table, processed_files.c.segment_name.in_(wanted)
            )
        )
        return [_segment(r) for r in rows]

    def record_processed_file(self, table: str, uri: str, fingerprint: str, segment_name: str) -> None:
        with self._write(table) as conn:
            _put_processed_file(conn, table, uri, fingerprint, segment_name)

    def withdraw_from_lineage(self, table: str, lineage_id: str, segment_name: str) -> None:
        """Take a not-yet-published target out of an IN_PROGRESS replacement."""
        with self._write(table) as conn:
            entry = self._entry(conn, table, lineage_id)
            if entry.state is not LineageState.IN_PROGRESS:
                raise SegmentConflictError(f"segment lineage {lineage_id} of {table} is {entry.state}")
            conn.execute(
                delete(lineage_segments).where(
                    lineage_segments.c.table_name == table,
                    lineage_segments.c.lineage_id == lineage_id,
                    lineage_segments.c.role == "to",
                    lineage_segments.c.segment_name == segment_name,
                )
            )

    def forget_lineage(self, table: str, lineage_id: str) -> None:
        with self._write(table) as conn:
            for t in (lineage_segments, segment_lineage):
                conn.execute(delete(t).where(t.c.table_name == table, t.c.lineage_id == lineage_id))

    def record_export(self, table: str, target: str, segment: str, total_docs: int) -> bool:
        """Mark a segment exported to a target; False if it already was (exactly once per target)."""
        try:
            with self._write(table) as conn:
                conn.execute(
                    insert(exported_segments).values(
                        table_name=table,
                        target=target,
                        segment_name=segment,
                        total_docs=total_docs,
                        exported_ms=now_ms(),
                    )
                )
        except IntegrityError:
            return False
        return True

    # ---------------------------------------------------------------- task metadata (watermarks)

    def task_metadata(self, table: str, task_type: str) -> dict[str, Any] | None:
        """Pinot's task metadata of a table and task type (its watermarks), or None if it has none."""
        with self.engine.connect() as conn:
            return _read_task_metadata(conn, table, task_type)

    def put_task_metadata(
        self, table: str, task_type: str, value: dict[str, Any], *, lock_table: str | None = None
    ) -> None:
        """Write the task metadata (under the write lock of ``lock_table``, default ``table``)."""
        with self._write(lock_table or table) as conn:
            _write_task_metadata(conn, table, task_type, value)

    def delete_task_metadata(self, table: str, task_type: str, *, lock_table: str | None = None) -> bool:
        with self._write(lock_table or table) as conn:
            result = conn.execute(
                delete(task_metadata).where(
                    task_metadata.c.table_name == table, task_metadata.c.task_type == task_type
                )
            )
            return bool(result.rowcount)

    def advance_watermark(
        self,
        target_table: str,
        added: Sequence[SegmentMetadata],
        *,
        metadata_table: str,
        task_type: str,
        key: str,
        expected: int | None,
        new: int,
        table_created_ms: int | None = None,
    ) -> list[SegmentMetadata] | None:
        """One transaction, under ``target_table``'s write lock: if ``metadata_table``'s watermark ``key`` of
        ``task_type`` is still ``expected`` (None: no metadata yet), record the ``added`` segments of
        ``target_table`` (already in the deep store) and set the watermark to ``new``. Returns the segments
        of the same names it replaced (their files can go), or None when the watermark had moved: nothing
        was written (a duplicate or a retry of work already done). With ``table_created_ms`` (the incarnation
        of ``target_table`` the segments were written for), TableDroppedError if it was dropped meanwhile."""
        with self._write(target_table) as conn:
            _check_incarnation(conn, target_table, table_created_ms)
            current = _read_task_metadata(conn, metadata_table, task_type)
            value = None if current is None else current.get(key)
            if value != expected:
                return None
            names = [s.segment_name for s in added]
            replaced = conn.execute(
                select(segments).where(
                    segments.c.table_name == target_table, segments.c.segment_name.in_(names)
                )
            ).all()
            _upsert_segments(conn, target_table, added)
            _write_task_metadata(conn, metadata_table, task_type, {**(current or {}), key: new})
            return [_segment(r) for r in replaced]

    def drop_table(
        self,
        table: str,
        before_commit: Callable[[], None] | None = None,
        *,
        deletion: Callable[[list[SegmentMetadata]], tuple[str, list[str]] | None] | None = None,
    ) -> DroppedTable:
        """Delete the table's config and everything about its data in one transaction, under the table's
        write lock (so a writer either recorded its segment before, or finds the table gone); returns its
        segments. ``before_commit`` runs inside the transaction (the deep store moves the table's files
        away there), then ``deletion`` (given the segments) names the deep store and the keys of the objects
        to delete (None: nothing), recorded as a pending deletion in the same transaction
        (taskplan/catalog/deletions.py).
        Raises TableNotFoundError if the table does not exist."""
        with self._write(table) as conn:
            created_ms = conn.execute(
                select(tables.c.created_ms).where(tables.c.name_with_type == table)
            ).scalar()
            if (
                created_ms is None
                or not conn.execute(delete(tables).where(tables.c.name_with_type == table)).rowcount
            ):
                raise TableNotFoundError(table)
            dropped = self._delete_table_data(conn, table)
            if before_commit is not None:
                before_commit()
            deletion_id = None
            named = deletion(dropped) if deletion is not None else None
            if named is not None:
                store_uri, keys = named
                deletion_id = record_deletion(conn, table, int(created_ms), now_ms(), store_uri, keys)
        return DroppedTable(dropped, deletion_id)

    def delete_table_data(self, table: str) -> list[SegmentMetadata]:
        """Forget everything about a table's data; returns its segments (for their files)."""
        with self._write(table) as conn:
            return self._delete_table_data(conn, table)

    def _delete_table_data(self, conn: Connection, table: str) -> list[SegmentMetadata]:
        rows = conn.execute(select(segments).where(segments.c.table_name == table)).all()
        for t in (
            segments,
            lineage_segments,
            segment_lineage,
            processed_files,
            exported_segments,
            task_metadata,
        ):
            conn.execute(delete(t).where(t.c.table_name == table))
        return [_segment(r) for r in rows]


def _check_incarnation(conn: Connection, table: str, created_ms: int | None) -> None:
    """Raise TableDroppedError unless the table exists as the incarnation created at ``created_ms``
    (no check without one). Run under the table's write lock, which a drop takes too."""
    if created_ms is None:
        return
    current = conn.execute(select(tables.c.created_ms).where(tables.c.name_with_type == table)).scalar()
    if current != created_ms:
        raise TableDroppedError(table)


def _read_task_metadata(conn: Connection, table: str, task_type: str) -> dict[str, Any] | None:
    raw = conn.execute(
        select(task_metadata.c.metadata_json).where(
            task_metadata.c.table_name == table, task_metadata.c.task_type == task_type
        )
    ).scalar()
    return None if raw is None else dict(json.loads(raw))


def _write_task_metadata(conn: Connection, table: str, task_type: str, value: dict[str, Any]) -> None:
    conn.execute(
        delete(task_metadata).where(
            task_metadata.c.table_name == table, task_metadata.c.task_type == task_type
        )
    )
    conn.execute(
        insert(task_metadata).values(
            table_name=table,
            task_type=task_type,
            metadata_json=json.dumps(value, sort_keys=True),
            updated_ms=now_ms(),
        )
    )


def _put_processed_file(conn: Connection, table: str, uri: str, fingerprint: str, segment: str) -> None:
    conn.execute(
        delete(processed_files).where(
            processed_files.c.table_name == table, processed_files.c.file_uri == uri
        )
    )
    conn.execute(
        insert(processed_files).values(
            table_name=table,
            file_uri=uri,
            fingerprint=fingerprint,
            segment_name=segment,
            processed_ms=now_ms(),
        )
    )


def _upsert_segment(conn: Connection, segment: SegmentMetadata) -> bool:
    """Write the segment's row (replacing one of the same name); True if there was one."""
    return _upsert_segments(conn, segment.table_name, [segment]) > 0


def _upsert_segments(conn: Connection, table: str, written: Sequence[SegmentMetadata]) -> int:
    """Write the segments' rows (replacing those of the same names) in two statements; returns how many
    rows were replaced."""
    if not written:
        return 0
    names = [s.segment_name for s in written]
    replaced = conn.execute(
        delete(segments).where(segments.c.table_name == table, segments.c.segment_name.in_(names))
    ).rowcount
    conn.execute(insert(segments), [_segment_row(s) for s in written])
    return int(replaced)


def _insert_ignore(conn: Connection, table: Any, **values: Any) -> None:
    condition = [table.c[k] == v for k, v in values.items()]
    if conn.execute(select(1).select_from(table).where(*condition)).first() is None:
        conn.execute(insert(table).values(**values))
