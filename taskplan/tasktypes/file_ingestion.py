"""FileIngestionTask: ingest CSV, JSON-lines and Parquet files from ``inputDirURI`` into segments.

Why one module a little past 400 lines: a task type is its generator and its executor, which share the
ingestion modes' rules below; the module is the whole task type, as a plugin author would write one.

Task configs (StarTree / Pinot names): ``inputDirURI`` (a directory under
``taskplan.ingestion.allowedRoots``), ``inputFormat`` (csv, json, parquet), ``includeFileNamePattern`` and
``excludeFileNamePattern`` (``glob:**/*.csv``), ``skipFileIfFailToInitReader``, ``tableMaxNumTasks`` (files
per batch), ``maxParseExceptions`` (Druid: bad rows a file may have before its subtask fails; default no
limit), and ``ingestionMode``:

- ``APPEND`` (default): each file is ingested exactly once, across batches, retries and later plans;
- ``SYNC``: the table mirrors the directory: new and changed files are ingested (a changed file's segment is
  replaced), segments of removed files are dropped;
- ``FULL_SWAP``: every file is ingested again and the plan's new segments replace all old ones in one
  atomic swap at the end.

With consistent push (``batchIngestionConfig.consistentDataPush`` on a REFRESH table, or the task config
``consistentPush``), APPEND and SYNC also publish the plan's whole change in one swap at the end. A swap is
a segment lineage entry opened at the plan's first batch and ended (idempotently) when no file is left, so
it happens exactly once even when a subtask, the generation or the swap itself is retried.

One subtask per file; each reports Druid's row counters and a few samples of rejected rows.
``SegmentGenerationAndPushTask`` (Pinot's name) runs APPEND/SYNC ingestion as a one-shot batch.
"""

from __future__ import annotations

import contextlib
import fnmatch
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from taskplan.catalog.errors import SegmentConflictError
from taskplan.data.rows import (
    InputFormat,
    ReaderInitError,
    RowReader,
    RowStats,
    TooManyParseExceptions,
)
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import LineageState, SegmentMetadata
from taskplan.models.table import Schema, TableConfig
from taskplan.plugin import (
    BaseTaskExecutor,
    BatchGeneration,
    BatchRequest,
    ExecutionContext,
    FatalTaskError,
    PinotTaskConfig,
    SubtaskResult,
    TaskConfigError,
    TaskTypePlugin,
)
from taskplan.settings import Settings
from taskplan.storage import S3URI, StorageError, StorageNotFoundError, StorageUnavailableError
from taskplan.tasktypes.common import (
    DataTaskGenerator,
    bool_config,
    bucket_store,
    check_reachable,
    int_config,
    plugin_catalog,
    require_schema,
    resolve_location,
    segment_manager,
    short_hash,
    table_max_num_tasks,
)

INPUT_DIR_URI = "inputDirURI"
INPUT_FORMAT = "inputFormat"
INCLUDE_PATTERN = "includeFileNamePattern"
EXCLUDE_PATTERN = "excludeFileNamePattern"
SKIP_UNREADABLE = "skipFileIfFailToInitReader"
MAX_PARSE_EXCEPTIONS = "maxParseExceptions"
INGESTION_MODE = "ingestionMode"
CONSISTENT_PUSH = "consistentPush"
# subtask configs
INPUT_FILE_URI = "inputFileURI"
FINGERPRINT = "fingerprint"
SEGMENT_NAME = "segmentName"
LINEAGE_ID = "lineageId"
REPLACES = "replacesSegment"
SKIPPED = "skipped:"  # processed-file record of an unreadable file that was skipped (+ the plan's lineage)


class IngestionMode(StrEnum):
    APPEND = "APPEND"
    SYNC = "SYNC"
    FULL_SWAP = "FULL_SWAP"


@dataclass(frozen=True)
class IngestionSpec:
    input_dir: Path | S3URI
    input_format: InputFormat
    include: str | None
    exclude: str | None
    mode: IngestionMode
    consistent: bool
    skip_unreadable: bool
    max_parse_exceptions: int | None
    max_tasks: int

    @property
    def uses_lineage(self) -> bool:
        return self.consistent or self.mode is IngestionMode.FULL_SWAP


def _pattern(configs: Mapping[str, str], key: str) -> str | None:
    raw = (configs.get(key) or "").strip()
    if not raw:
        return None
    if raw.startswith("glob:"):
        return raw.removeprefix("glob:")
    raise TaskConfigError(f"{key} {raw!r}: use Pinot's form glob:<pattern>, e.g. glob:**/*.csv")


def parse_spec(table: TableConfig, configs: Mapping[str, str], settings: Settings) -> IngestionSpec:
    raw_dir = configs.get(INPUT_DIR_URI)
    if not raw_dir:
        raise TaskConfigError(f"{INPUT_DIR_URI} is required")
    raw_format = configs.get(INPUT_FORMAT)
    if not raw_format:
        raise TaskConfigError(f"{INPUT_FORMAT} is required: csv, json or parquet")
    try:
        input_format = InputFormat.parse(raw_format)
    except ValueError as exc:
        raise TaskConfigError(str(exc)) from None
    raw_mode = (configs.get(INGESTION_MODE) or IngestionMode.APPEND.value).strip().upper()
    try:
        mode = IngestionMode(raw_mode)
    except ValueError:
        raise TaskConfigError(
            f"{INGESTION_MODE} {raw_mode!r} is not one of {', '.join(m.value for m in IngestionMode)}"
        ) from None
    batch = table.ingestionConfig.batchIngestionConfig if table.ingestionConfig else None
    table_consistent = bool(batch and batch.consistentDataPush and batch.segmentIngestionType == "REFRESH")
    return IngestionSpec(
        input_dir=resolve_location(
            raw_dir, settings.allowed_input_roots, settings.allowed_input_uris, INPUT_DIR_URI
        ),
        input_format=input_format,
        include=_pattern(configs, INCLUDE_PATTERN),
        exclude=_pattern(configs, EXCLUDE_PATTERN),
        mode=mode,
        consistent=bool_config(configs, CONSISTENT_PUSH, table_consistent),
        skip_unreadable=bool_config(configs, SKIP_UNREADABLE),
        max_parse_exceptions=int_config(configs, MAX_PARSE_EXCEPTIONS, None, low=0),
        max_tasks=table_max_num_tasks(configs),
    )


def fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def s3_file_uri(bucket: str, key: str) -> str:
    """An object's URI, percent-encoded as parse_s3 decodes it (keys with ' ', '%', '#', '?' round-trip)."""
    return f"s3://{bucket}/{urllib.parse.quote(key, safe='/')}"


def list_input_files(spec: IngestionSpec, settings: Settings) -> dict[str, str]:
    """URI -> fingerprint of the matching files under the input directory or prefix (sorted): a local
    file's is its size and modification time, an object's its size and ETag. A store that cannot be listed
    (unreachable, wrong credentials, no such bucket) is a TaskConfigError with its own message."""
    if isinstance(spec.input_dir, S3URI):
        return _list_objects(spec, spec.input_dir, settings)
    if not spec.input_dir.is_dir():
        raise TaskConfigError(f"{INPUT_DIR_URI} {spec.input_dir} is not a directory")
    found: dict[str, str] = {}
    for path in sorted(spec.input_dir.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(spec.input_dir).as_posix()
        if spec.include and not _glob(relative, spec.include):
            continue
        if spec.exclude and _glob(relative, spec.exclude):
            continue
        found[path.as_uri()] = fingerprint(path)
    return found


def _list_objects(spec: IngestionSpec, root: S3URI, settings: Settings) -> dict[str, str]:
    prefix = f"{root.key}/" if root.key else ""
    try:
        objects = bucket_store(root, settings).list(prefix)
    except StorageUnavailableError:
        raise  # an outage, not a config error: the generation is retried
    except StorageError as exc:
        raise TaskConfigError(f"{INPUT_DIR_URI} {root}: {exc}") from None
    found: dict[str, str] = {}
    for info in objects:
        relative = info.key[len(prefix) :]
        if not relative or relative.endswith("/"):
            continue
        if spec.include and not _glob(relative, spec.include):
            continue
        if spec.exclude and _glob(relative, spec.exclude):
            continue
        found[s3_file_uri(root.bucket, info.key)] = info.fingerprint()
    return found


@contextlib.contextmanager
def local_input(uri: str, fp: str, settings: Settings) -> Iterator[Path]:
    """The input file on this machine: a local one in place (under the allowed roots), an object streamed
    to this process's scratch (only the version listed: its ETag must still match) and deleted after."""
    try:
        location = resolve_location(
            uri, settings.allowed_input_roots, settings.allowed_input_uris, INPUT_FILE_URI
        )
    except TaskConfigError as exc:
        raise FatalTaskError(str(exc)) from None
    if isinstance(location, Path):
        yield location
        return
    scratch = settings.scratch_dir / "input"
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / f"{uuid.uuid4().hex}-{Path(location.key).name}"
    etag = fp.split("-", 1)[1] if "-" in fp else None
    try:
        try:
            bucket_store(location, settings).get_file(location.key, copy, if_match=etag)
        except StorageNotFoundError:
            raise FileNotFoundError(uri) from None
        except StorageUnavailableError:
            raise  # an outage: the subtask waits it out (activities/subtasks.py)
        except StorageError as exc:
            raise FatalTaskError(str(exc)) from None
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def _glob(relative: str, pattern: str) -> bool:
    # Pinot's glob:**/*.csv matches at any depth, including the top level.
    return fnmatch.fnmatch(relative, pattern) or (
        pattern.startswith("**/") and fnmatch.fnmatch(relative, pattern.removeprefix("**/"))
    )


def _segment_of(recorded: str) -> str | None:
    """The segment a processed-file record names (None for a skipped file)."""
    return None if not recorded or recorded.startswith(SKIPPED) else recorded


def _refuse_merged(processed: dict[str, tuple[str, str]], files: dict[str, str], touched: list[str]) -> None:
    """SYNC replaces or drops a changed or removed file's segment. A segment that also holds the rows of a
    file still there unchanged (a merge, MergeRollupTask, put several files' rows into it) cannot be: its
    other rows would go too. Refused, naming the files, rather than lose them."""
    holders: dict[str, list[str]] = {}
    for uri, (_, seg) in processed.items():
        if _segment_of(seg):
            holders.setdefault(seg, []).append(uri)
    for seg in sorted(set(touched)):
        kept = [uri for uri in holders.get(seg, []) if files.get(uri) == processed[uri][0]]
        if kept:
            raise TaskConfigError(
                f"SYNC cannot replace segment {seg} of a changed or removed file: it also holds the rows of "
                f"{len(kept)} unchanged input file(s) ({kept[0]}{', ...' if len(kept) > 1 else ''}), merged "
                f"into it; ingest with {INGESTION_MODE}=FULL_SWAP instead"
            )


def segment_name_for(table: TableConfig, uri: str, fp: str, lineage_id: str | None) -> str:
    parts = [table.raw_table_name, short_hash(uri, length=10), short_hash(fp, length=6)]
    if lineage_id:
        parts.append(short_hash(lineage_id, length=6))
    return "_".join(parts)


def plan_lineage_id(plan_id: str) -> str:
    return f"ingest-{short_hash(plan_id, length=24)}"


class FileIngestionTaskGenerator(DataTaskGenerator):
    task_type: ClassVar[str] = "FileIngestionTask"

    def _settings(self) -> Settings:
        assert self.context is not None
        return self.context.settings

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        if schema is None:
            raise TaskConfigError(f"table {table_config.tableName} has no schema")
        if table_config.tableType != "OFFLINE":
            raise TaskConfigError(
                f"{self.task_type} ingests into OFFLINE tables, not {table_config.tableName}"
            )
        spec = parse_spec(table_config, task_configs, self._settings())
        if isinstance(spec.input_dir, S3URI):  # an unreachable endpoint, wrong credentials, no bucket: now
            store = bucket_store(spec.input_dir, self._settings())
            check_reachable(store, INPUT_DIR_URI, str(spec.input_dir))

    # -------------------------------------------------------------- what is left to ingest

    def _plan(
        self, table: TableConfig, spec: IngestionSpec, lineage_id: str | None
    ) -> tuple[list[tuple[str, str, str | None]], list[str]]:
        """(uri, fingerprint, segment it replaces) still to ingest, and segments of removed files."""
        store = plugin_catalog(self.context).segments
        files = list_input_files(spec, self._settings())
        processed = store.processed_files(table.tableName)
        lineage = store.get_lineage(table.tableName, lineage_id) if lineage_id else None
        done_in_plan = set(lineage.segments_to) if lineage else set()
        done_in_plan.add(f"{SKIPPED}{lineage_id or ''}")
        pending: list[tuple[str, str, str | None]] = []
        for uri, fp in files.items():
            previous = processed.get(uri)
            if spec.mode is IngestionMode.FULL_SWAP:
                if previous is None or previous[1] not in done_in_plan or previous[0] != fp:
                    pending.append((uri, fp, None))
            elif previous is None:
                pending.append((uri, fp, None))
            elif spec.mode is IngestionMode.SYNC and previous[0] != fp:
                pending.append((uri, fp, _segment_of(previous[1])))
        removed = []
        if spec.mode is IngestionMode.SYNC:
            removed = [seg for uri, (_, seg) in processed.items() if uri not in files and _segment_of(seg)]
            _refuse_merged(processed, files, [seg for _, _, seg in pending if seg] + removed)
            removed = sorted(set(removed))
        return pending, removed

    def _subtasks(
        self,
        table: TableConfig,
        spec: IngestionSpec,
        pending: Sequence[tuple[str, str, str | None]],
        lineage_id: str | None,
    ) -> list[PinotTaskConfig]:
        subtasks = []
        for uri, fp, replaces in pending[: spec.max_tasks]:
            configs = {
                INPUT_FILE_URI: uri,
                FINGERPRINT: fp,
                INPUT_FORMAT: spec.input_format.value,
                SEGMENT_NAME: segment_name_for(table, uri, fp, lineage_id),
                SKIP_UNREADABLE: str(spec.skip_unreadable).lower(),
            }
            if spec.max_parse_exceptions is not None:
                configs[MAX_PARSE_EXCEPTIONS] = str(spec.max_parse_exceptions)
            if lineage_id:
                configs[LINEAGE_ID] = lineage_id
            elif replaces:
                configs[REPLACES] = replaces
            subtasks.append(self.task(table.tableName, configs))
        return subtasks

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        spec = parse_spec(table_config, task_configs, self._settings())
        if spec.uses_lineage:
            raise TaskConfigError(
                "full swap and consistent push publish the whole plan at once: run them as a task plan "
                '(enableTaskOrchestration "true")'
            )
        pending, removed = self._plan(table_config, spec, None)
        if removed:
            segment_manager(self.context).retire(table_config.tableName, removed)
        return self._subtasks(table_config, spec, pending, None)

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        table = request.table_config
        spec = parse_spec(table, request.properties, self._settings())
        manager = segment_manager(self.context)
        lineage_id = self._open_lineage(manager, table, spec, request) if spec.uses_lineage else None
        pending, removed = self._plan(table, spec, lineage_id)
        if pending:
            subtasks = self._subtasks(table, spec, pending, lineage_id)
            return BatchGeneration(
                subtasks=subtasks,
                inputs_in_batch=len(subtasks),
                inputs_to_process=request.inputs_processed + len(pending),
                input_unit="files",
                cursor={LINEAGE_ID: lineage_id} if lineage_id else {},
            )
        stats: dict[str, str] = {}
        if lineage_id:
            retired = manager.finish_replace(table.tableName, lineage_id)  # the swap; idempotent
            stats["segmentsReplaced"] = str(len(retired))
        elif removed:
            stats["segmentsDropped"] = str(len(manager.retire(table.tableName, removed)))
        return BatchGeneration.done(
            inputs_to_process=request.inputs_processed, input_unit="files", custom_stats=stats
        )

    def _open_lineage(
        self, manager: SegmentManager, table: TableConfig, spec: IngestionSpec, request: BatchRequest
    ) -> str:
        lineage_id = request.cursor.get(LINEAGE_ID) or plan_lineage_id(request.plan_id)
        existing = manager.store.get_lineage(table.tableName, lineage_id)
        if existing is not None:
            if existing.state is LineageState.REVERTED:
                raise TaskConfigError(f"the plan's segment swap {lineage_id} was reverted; start a new plan")
            return lineage_id
        # Another plan's unfinished swap is abandoned first (Pinot's forceCleanup).
        for entry in manager.store.lineage(table.tableName):
            if entry.state is LineageState.IN_PROGRESS and entry.owner.startswith(f"{self.task_type}:"):
                manager.abandon_replace(table.tableName, entry.lineage_id)
        if spec.mode is IngestionMode.FULL_SWAP:
            replaced = [s.segment_name for s in manager.store.visible_segments(table.tableName)]
        else:
            pending, removed = self._plan(table, spec, None)
            replaced = (
                [seg for _, _, seg in pending if seg] + removed if spec.mode is IngestionMode.SYNC else []
            )
        manager.store.start_replace(
            table.tableName, replaced, lineage_id=lineage_id, owner=f"{self.task_type}:{request.plan_id}"
        )
        return lineage_id


class SegmentGenerationAndPushTaskGenerator(FileIngestionTaskGenerator):
    """Pinot's SegmentGenerationAndPushTask name: APPEND or SYNC ingestion as a one-shot batch."""

    task_type: ClassVar[str] = "SegmentGenerationAndPushTask"
    supports_orchestration: ClassVar[bool] = False


def _build(
    manager: SegmentManager,
    table: TableConfig,
    schema: Schema,
    path: Path,
    name: str,
    uri: str,
    input_format: InputFormat,
    limit: int | None,
) -> tuple[SegmentMetadata, Path, RowStats]:
    """The file's segment, staged (not yet published), and its row counters."""
    if input_format is InputFormat.CSV:
        return manager.build_from_csv(table, schema, path, name, source=uri, max_parse_exceptions=limit)
    reader = RowReader(schema, manager.duckdb_config, max_parse_exceptions=limit, source_name=uri)
    rows = list(reader.read(path, input_format))
    segment, staged = manager.build(table, schema, rows, name, source=uri)
    return segment, staged, reader.stats


class FileIngestionTaskExecutor(BaseTaskExecutor):
    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        configs = task.configs
        catalog = plugin_catalog(context)
        manager = segment_manager(context)
        table = catalog.require_table(task.table_name)
        schema = require_schema(catalog, table)
        uri, fp, name = configs[INPUT_FILE_URI], configs[FINGERPRINT], configs[SEGMENT_NAME]
        lineage_id = configs.get(LINEAGE_ID) or None
        previous = manager.store.processed_files(table.tableName).get(uri)
        if previous is not None and previous == (fp, name):
            return SubtaskResult(counts={"filesSkipped": 1}, message=f"{uri} was ingested already")
        limit = int_config(configs, MAX_PARSE_EXCEPTIONS, None, low=0)
        input_format = InputFormat.parse(configs[INPUT_FORMAT])
        try:
            with local_input(uri, fp, context.settings) as path:
                segment, staged, stats = _build(manager, table, schema, path, name, uri, input_format, limit)
        except ReaderInitError as exc:
            if configs.get(SKIP_UNREADABLE) == "true":
                marker = f"{SKIPPED}{lineage_id or ''}"
                manager.store.record_processed_file(table.tableName, uri, fp, marker)
                return SubtaskResult(counts={"filesSkipped": 1}, message=f"skipped: {exc}")
            raise FatalTaskError(f"{exc} (set {SKIP_UNREADABLE} to skip such files)") from None
        except TooManyParseExceptions as exc:
            raise FatalTaskError(str(exc)) from None
        except FileNotFoundError:
            raise FatalTaskError(f"{uri} disappeared before it could be ingested") from None
        manager.deep_store.publish(staged, table.tableName, segment.file_name)
        replaces = configs.get(REPLACES)
        try:
            if lineage_id is not None:
                # The file changed since an earlier subtask of this plan ingested it: drop that copy.
                if previous is not None and previous[1] != name and _segment_of(previous[1]):
                    manager.retire_unpublished(table.tableName, previous[1], lineage_id)
                manager.store.add_segment(segment, lineage_id=lineage_id, processed_file=(uri, fp))
            elif replaces and replaces != name:
                self._replace_one(manager, table.tableName, replaces, segment, (uri, fp))
            else:
                manager.store.add_segment(segment, processed_file=(uri, fp))
        except SegmentConflictError as exc:
            raise FatalTaskError(str(exc)) from None
        counts: dict[str, int | float] = {**stats.counts(), "segments": 1}
        return SubtaskResult(counts=counts, samples=stats.samples)

    def _replace_one(
        self,
        manager: SegmentManager,
        table: str,
        old: str,
        segment: SegmentMetadata,
        processed: tuple[str, str],
    ) -> None:
        visible = {s.segment_name for s in manager.store.visible_segments(table)}
        if old not in visible:
            manager.store.add_segment(segment, processed_file=processed)
            return
        lineage_id = f"sync-{short_hash(old, segment.segment_name, length=24)}"
        manager.store.start_replace(table, [old], [segment.segment_name], lineage_id=lineage_id, owner="sync")
        manager.store.add_segment(segment, processed_file=processed)
        manager.finish_replace(table, lineage_id)


FILE_INGESTION = TaskTypePlugin(
    generator=FileIngestionTaskGenerator,
    executor=FileIngestionTaskExecutor,
    description="ingests CSV, JSON lines and Parquet files into segments (append, sync, full swap)",
)
SEGMENT_GENERATION_AND_PUSH = TaskTypePlugin(
    generator=SegmentGenerationAndPushTaskGenerator,
    executor=FileIngestionTaskExecutor,
    description="Pinot's SegmentGenerationAndPushTask: file ingestion as a one-shot batch",
)
