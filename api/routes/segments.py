"""Pinot's segment listing and ``POST /ingestFromFile``."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, UploadFile
from fastapi import Path as PathParam

from taskplan.api.auth import Permission, PrincipalDep, require_table
from taskplan.api.deps import CatalogDep, SegmentsDep, StackDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.table_access import TableTypeQuery, resolve_tables
from taskplan.catalog import Catalog, TableNotFoundError
from taskplan.clock import now_ms
from taskplan.data.rows import InputFormat, ReaderInitError, RowReader, TooManyParseExceptions
from taskplan.data.segments import AppendConflictError, SegmentManager, StreamConfigError
from taskplan.models.segment import SegmentMetadata, SegmentSpan, SegmentStatus, server_metadata, zk_metadata
from taskplan.names import InvalidNameError, parse_table_name
from taskplan.tasktypes.common import short_hash

router = APIRouter(tags=["segments"], responses=ERROR_RESPONSES)
MAX_UPLOAD_BYTES = 256 * 1024 * 1024


TableNamePath = Annotated[str, PathParam(max_length=200)]


def _timestamp(raw: str, name: str) -> int | None:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(
            400,
            f"Failed to parse the start/end timestamp ({name}={raw!r}). Please make sure they are in "
            "'millisSinceEpoch' format.",
        ) from None


def _within(
    segment: SegmentMetadata | SegmentSpan, start: int | None, end: int | None, exclude_overlapping: bool
) -> bool:
    """Pinot's isSegmentWithinTimeStamps, on the segment's time range in epoch milliseconds."""
    if start is None and end is None:
        return True
    if end is not None and segment.status is SegmentStatus.IN_PROGRESS:
        return False  # an end given: never the consuming segment
    if segment.start_time is None and segment.end_time is None:
        return True
    low, high = segment.start_time or 0, segment.end_time or 0
    first, last = start if start is not None else -(2**63), end if end is not None else 2**63 - 1
    if low > high:
        return False
    if first <= low and high < last:
        return True
    if high < first or low >= last:
        return False
    return not exclude_overlapping


@router.get(
    "/segments/{tableName}",
    response_model=list[dict[str, list[str]]],
    summary='A table\'s segment names, per table type ([{"OFFLINE": [...]}])',
)
async def list_segments(
    tableName: TableNamePath,
    catalog: CatalogDep,
    principal: PrincipalDep,
    table_type: TableTypeQuery = None,
    exclude_replaced: Annotated[str | None, Query(alias="excludeReplacedSegments", max_length=10)] = None,
    start_timestamp: Annotated[str, Query(alias="startTimestamp", max_length=30)] = "",
    end_timestamp: Annotated[str, Query(alias="endTimestamp", max_length=30)] = "",
    exclude_overlapping: Annotated[bool, Query(alias="excludeOverlapping")] = False,
) -> list[dict[str, list[str]]]:
    """Pinot's getSegments: every segment (replaced ones too, unless ``excludeReplacedSegments=true``), or
    those within ``[startTimestamp, endTimestamp)`` (epoch ms; overlapping ones too unless
    ``excludeOverlapping``)."""
    start, end = _timestamp(start_timestamp, "startTimestamp"), _timestamp(end_timestamp, "endTimestamp")
    if start is not None and end is not None and start >= end:
        raise ApiError(
            400,
            "The value of startTimestamp should be smaller than the one of endTimestamp. "
            f"Start timestamp: {start}. End timestamp: {end}",
        )
    only_visible = (exclude_replaced or "").lower() == "true"  # Java's Boolean.parseBoolean
    table = parse_table_name(tableName)
    found = await asyncio.to_thread(resolve_tables, catalog, principal, Permission.READ, table, table_type)
    result: list[dict[str, list[str]]] = []
    for config in found:
        segments = await asyncio.to_thread(
            catalog.segments.segment_spans, config.tableName, visible_only=only_visible
        )
        names = [s.segment_name for s in segments if _within(s, start, end, exclude_overlapping)]
        result.append({str(config.tableType): names})
    return result


@router.get(
    "/segments/{tableName}/metadata",
    response_model=dict[str, dict[str, Any]],
    summary="Metadata of a table's segments, keyed by segment name (Pinot's server segment metadata)",
)
async def table_segments_metadata(
    tableName: TableNamePath,
    catalog: CatalogDep,
    principal: PrincipalDep,
    table_type: TableTypeQuery = None,
    segments: Annotated[list[str] | None, Query(max_length=10_000)] = None,
    columns: Annotated[list[str] | None, Query(max_length=1_000)] = None,
) -> dict[str, dict[str, Any]]:
    """Pinot's getServerMetadata: the first table the name resolves to (OFFLINE first), its visible
    segments (or those named in ``segments``). ``columns`` is accepted; taskplan keeps no column
    metadata, so ``columns`` is always empty."""
    table = parse_table_name(tableName)
    found = await asyncio.to_thread(resolve_tables, catalog, principal, Permission.READ, table, table_type)
    config = found[0]
    schema = await asyncio.to_thread(catalog.get_schema, config.raw_table_name)
    listed = await asyncio.to_thread(catalog.segments.visible_segments, config.tableName, segments or None)
    return {s.segment_name: server_metadata(s, schema) for s in listed}


@router.get(
    "/segments/{tableName}/{segmentName}/metadata",
    response_model=dict[str, str],
    summary="One segment's metadata (Pinot's segment ZK metadata: segment.total.docs, segment.crc, ...)",
)
async def segment_metadata(
    tableName: TableNamePath,
    segmentName: Annotated[str, PathParam(max_length=512)],
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> dict[str, str]:
    """Pinot's getSegmentMetadata: a raw table name looks in OFFLINE, then REALTIME."""
    table = parse_table_name(tableName)
    found = await asyncio.to_thread(resolve_tables, catalog, principal, Permission.READ, table)
    for config in found:
        segment = await asyncio.to_thread(catalog.segments.get_segment, config.tableName, segmentName)
        if segment is not None:
            schema = await asyncio.to_thread(catalog.get_schema, config.raw_table_name)
            return zk_metadata(segment, config.tableType, schema)
    raise ApiError(404, f"Failed to find segment: {segmentName} in table: {tableName}")


def _batch_config(raw: str) -> dict[str, str]:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"batchConfigMapStr is not JSON: {exc.msg}") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "batchConfigMapStr must be a JSON object")
    return {str(k): str(v) for k, v in parsed.items()}


@router.post("/ingestFromFile", summary="Ingest an uploaded file into a table (a new segment, or the "
             "consuming segment of a REALTIME table)")  # fmt: skip
async def ingest_from_file(
    file: UploadFile,
    catalog: CatalogDep,
    stack: StackDep,
    manager: SegmentsDep,
    principal: PrincipalDep,
    table_name_with_type: Annotated[str, Query(alias="tableNameWithType", max_length=200)],
    batch_config_map_str: Annotated[str, Query(alias="batchConfigMapStr", max_length=10_000)],
) -> dict[str, Any]:
    try:
        target = parse_table_name(table_name_with_type, typed=True)
    except InvalidNameError as exc:
        raise ApiError(400, f"tableNameWithType: {exc}") from None
    # First, so that a table that is not the principal's answers as a missing one, whatever else is wrong.
    require_table(principal, Permission.UPDATE, target)
    configs = _batch_config(batch_config_map_str)
    try:
        input_format = InputFormat.parse(configs.get("inputFormat", ""))
    except ValueError as exc:
        raise ApiError(400, f"batchConfigMapStr: {exc}") from None
    limit_raw = configs.get("maxParseExceptions")
    if limit_raw is not None and not limit_raw.isdigit():
        raise ApiError(400, "batchConfigMapStr: maxParseExceptions must be a non-negative integer")
    # The incarnation of the table the rows are for: one dropped (or dropped and created again) before
    # they are stored gets none of them (404).
    created_ms = await asyncio.to_thread(catalog.segments.table_created_ms, table_name_with_type)
    if created_ms is None:
        raise TableNotFoundError(table_name_with_type)
    table = await asyncio.to_thread(catalog.require_table, table_name_with_type)
    await asyncio.to_thread(catalog.require_schema, table.raw_table_name)  # 404 before the upload
    staging = stack.settings.data_dir.resolve() / "uploads"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=staging, suffix=f".{input_format.value}") as upload:
        size = 0
        while chunk := await file.read(1 << 20):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise ApiError(413, f"the file is larger than {MAX_UPLOAD_BYTES} bytes")
            upload.write(chunk)
        upload.flush()
        return await asyncio.to_thread(
            _ingest, manager, catalog, table_name_with_type, created_ms, Path(upload.name), input_format,
            None if limit_raw is None else int(limit_raw), file.filename or "upload",
        )  # fmt: skip


def _ingest(
    manager: SegmentManager,
    catalog: Catalog,
    table_name: str,
    created_ms: int,
    path: Path,
    input_format: InputFormat,
    max_parse_exceptions: int | None,
    file_name: str,
) -> dict[str, Any]:
    table = catalog.require_table(table_name)
    schema = catalog.require_schema(table.raw_table_name)
    stamp = now_ms()
    name = f"{table.raw_table_name}_{stamp}_{short_hash(file_name, str(stamp), str(path), length=8)}"
    source = f"ingestFromFile:{file_name}"
    try:
        if table.tableType == "OFFLINE" and input_format is InputFormat.CSV:
            with manager.dropped_meanwhile(table_name, created_ms):
                segment, staged, stats = manager.build_from_csv(
                    table, schema, path, name, source=source, max_parse_exceptions=max_parse_exceptions
                )
                manager.publish(segment, staged, table_created_ms=created_ms)
        else:
            reader = RowReader(
                schema,
                manager.duckdb_config,
                max_parse_exceptions=max_parse_exceptions,
                source_name=file_name,
            )
            rows = reader.read(path, input_format)  # read as the segment is written: never all at once
            if table.tableType == "REALTIME":
                segment = manager.append_realtime(table, schema, rows, table_created_ms=created_ms)
            else:
                segment = manager.upload(
                    table, schema, rows, name, source=source, table_created_ms=created_ms
                )
            stats = reader.stats
    except (ReaderInitError, TooManyParseExceptions, StreamConfigError) as exc:
        raise ApiError(400, _as_uploaded(str(exc), path, file_name)) from None
    except AppendConflictError as exc:
        raise ApiError(409, str(exc)) from None
    return {
        "status": f"Successfully ingested file into table: {table_name} as segment: {segment.segment_name}",
        "segment": segment.to_pinot(),
        "rowStats": stats.counts(),
        "samples": stats.samples,
    }


def _as_uploaded(message: str, path: Path, file_name: str) -> str:
    """A reader's message (its own or DuckDB's) naming the upload as the client named it: where the server
    staged it is none of the client's business. DuckDB's quote of its query (``LINE 1: SELECT ...``, the
    staging path cut anywhere) is dropped."""
    message = message.split("\nLINE ", 1)[0].rstrip()
    message = message.replace(str(path), file_name).replace(path.name, file_name)
    return message.replace(str(path.parent), "the upload directory")
