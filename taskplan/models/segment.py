"""Segments as the catalog records them: Pinot's segment metadata and segment lineage entries.

A segment's file lives in the deep store; which segments a reader sees is the lineage's business
(``taskplan.catalog.segments``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class SegmentStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"  # a REALTIME table's consuming segment
    DONE = "DONE"


class LineageState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    REVERTED = "REVERTED"


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
