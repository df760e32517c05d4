"""Segments as the catalog records them: Pinot's segment metadata and segment lineage entries.

A segment's file lives in the deep store; which segments a reader sees is the lineage's business
(``taskplan.catalog.segments``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from taskplan.models.table import Schema


class SegmentStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"  # a REALTIME table's consuming segment
    DONE = "DONE"


class LineageState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    REVERTED = "REVERTED"


class SegmentSpan(NamedTuple):
    """What a listing of names needs of a segment: its name, status and time range (no JSON to parse)."""

    segment_name: str
    status: SegmentStatus
    start_time: int | None
    end_time: int | None


@dataclass(frozen=True)
class SegmentMetadata:
    table_name: str
    segment_name: str
    status: SegmentStatus
    total_docs: int
    size_bytes: int
    crc: str
    file_name: str
    created_ms: int
    time_column: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    committed_ms: int | None = None
    source: str | None = None
    custom: dict[str, str] = field(default_factory=dict)

    def to_pinot(self) -> dict[str, Any]:
        """The shape GET /segments/{tableName} returns for each segment."""
        return {
            "segmentName": self.segment_name,
            "totalDocs": self.total_docs,
            "status": self.status.value,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "timeColumn": self.time_column,
            "sizeInBytes": self.size_bytes,
            "crc": self.crc,
            "creationTimeMs": self.created_ms,
            "commitTimeMs": self.committed_ms,
            "source": self.source,
            "custom": dict(self.custom),
        }


@dataclass(frozen=True)
class LineageEntry:
    lineage_id: str
    state: LineageState
    owner: str
    segments_from: tuple[str, ...]
    segments_to: tuple[str, ...]
    created_ms: int
    updated_ms: int


_TIME_UNITS = ("NANOSECONDS", "MICROSECONDS", "MILLISECONDS", "SECONDS", "MINUTES", "HOURS", "DAYS")
_MS_PER_UNIT = {
    "NANOSECONDS": 1e-6,
    "MICROSECONDS": 1e-3,
    "MILLISECONDS": 1,
    "SECONDS": 1000,
    "MINUTES": 60_000,
    "HOURS": 3_600_000,
    "DAYS": 86_400_000,
}


def time_unit(schema: Schema | None, column: str | None) -> str | None:
    """The time unit of a segment's time column, from its schema's dateTimeFieldSpec format
    (``1:MILLISECONDS:EPOCH``, ``EPOCH|SECONDS``, ``TIMESTAMP``); None when it has none or it is not epoch."""
    if schema is None or column is None:
        return None
    spec = next((f for f in schema.fields if f.name == column), None)
    if spec is None:
        return None
    if str(spec.dataType).endswith("TIMESTAMP") or (spec.format or "").upper() == "TIMESTAMP":
        return "MILLISECONDS"
    parts = (spec.format or "").upper().replace("|", ":").split(":")
    return next((p for p in parts if p in _TIME_UNITS), None)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _millis(value: int | None, unit: str | None) -> int | None:
    return None if value is None else int(value * _MS_PER_UNIT.get(unit or "MILLISECONDS", 1))


def zk_metadata(segment: SegmentMetadata, table_type: str, schema: Schema | None) -> dict[str, str]:
    """Pinot's SegmentZKMetadata.toMap() of a segment (``GET /segments/{table}/{segment}/metadata``):
    every value a string, keys sorted."""
    fields: dict[str, str] = {
        "segment.total.docs": str(segment.total_docs),
        "segment.crc": segment.crc,
        "segment.creation.time": str(segment.created_ms),
        "segment.size.in.bytes": str(segment.size_bytes),
        "segment.push.time": str(segment.committed_ms or segment.created_ms),
        "segment.index.version": "v3",
    }
    unit = time_unit(schema, segment.time_column)
    if segment.start_time is not None and segment.end_time is not None:
        fields["segment.start.time"] = str(segment.start_time)
        fields["segment.end.time"] = str(segment.end_time)
        fields["segment.time.unit"] = unit or "MILLISECONDS"
    if table_type == "REALTIME":
        fields["segment.realtime.status"] = segment.status.value
    if segment.custom:
        fields["custom.map"] = json.dumps(dict(segment.custom), separators=(",", ":"))
    return dict(sorted(fields.items()))


def _granularity_s(unit: str | None) -> int | None:
    return int(_MS_PER_UNIT[unit] // 1000) if unit in ("SECONDS", "MINUTES", "HOURS", "DAYS") else None


def server_metadata(segment: SegmentMetadata, schema: Schema | None) -> dict[str, Any]:
    """Pinot's server segment metadata (SegmentMetadataImpl.toJson) of a segment, as
    ``GET /segments/{table}/metadata`` answers it per segment name."""
    unit = time_unit(schema, segment.time_column)
    start, end = _millis(segment.start_time, unit), _millis(segment.end_time, unit)
    return {
        "segmentName": segment.segment_name,
        "schemaName": schema.schemaName if schema is not None else None,
        "crc": int(segment.crc) if segment.crc.isdigit() else segment.crc,
        "creationTimeMillis": segment.created_ms,
        "creationTimeReadable": _iso(segment.created_ms),
        "timeColumn": segment.time_column,
        "timeUnit": unit if segment.time_column else None,
        "timeGranularitySec": _granularity_s(unit),
        "startTimeMillis": start,
        "startTimeReadable": _iso(start) if start is not None else None,
        "endTimeMillis": end,
        "endTimeReadable": _iso(end) if end is not None else None,
        "segmentVersion": "v3",
        "creatorName": None,
        "totalDocs": segment.total_docs,
        "custom": dict(segment.custom),
        "columns": [],
        "indexes": {},
    }
