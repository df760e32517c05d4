"""One configuration for every process (API, controller worker, minion worker).

Values come, lowest precedence first, from the defaults below, a Java-style properties file
(``--config FILE`` or ``TASKPLAN_CONFIG``) and the environment. Keys keep Pinot's dotted names
(``controller.startree.task.manager.enableTaskOrchestration``); in the environment a key is spelled
upper case with dots as underscores (``CONTROLLER_PORT``), or verbatim with the ``TASKPLAN_PROP_``
prefix for keys that contain characters an environment name cannot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENABLE_ORCHESTRATION = "controller.startree.task.manager.enableTaskOrchestration"
ORPHAN_CLEANUP_INTERVAL = "controller.startree.task.manager.orphanedTaskPlanCleanupIntervalInSeconds"
PRINCIPALS = "controller.admin.access.control.principals"


class Settings(BaseModel):
    """Typed view of the properties. Field aliases are the property names operators write."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    temporal_address: str = Field("127.0.0.1:7233", alias="temporal.address")
    temporal_namespace: str = Field("default", alias="temporal.namespace")
    data_dir: Path = Field(Path(".taskplan"), alias="taskplan.dataDir")
    catalog_url: str | None = Field(None, alias="taskplan.catalog.url")
    plugins: str = Field("", alias="taskplan.plugins")
    controller_host: str = Field("127.0.0.1", alias="controller.host")
    controller_port: int = Field(9000, alias="controller.port")
    enable_task_orchestration: bool = Field(True, alias=ENABLE_ORCHESTRATION)
    orphaned_plan_cleanup_interval_s: int = Field(28800, alias=ORPHAN_CLEANUP_INTERVAL, ge=1)
    max_failed_batches: int = Field(3, alias="taskplan.plan.maxFailedBatches", ge=0, le=2**31 - 1)
    max_failed_subtasks_per_batch: int = Field(
        0, alias="taskplan.batch.maxFailedSubtasksPerBatch", ge=0, le=2**31 - 1
    )
    max_generation_attempts: int = Field(10, alias="taskplan.plan.maxGenerationAttempts", ge=1)
    retained_batch_records: int = Field(1000, alias="taskplan.plan.retainedBatchRecords", ge=10)
    max_pending_subtasks: int = Field(1000, alias="taskplan.batch.maxPendingSubtasks", ge=1, le=1900)
    subtask_heartbeat_timeout_s: int = Field(30, alias="taskplan.subtask.heartbeatTimeoutSeconds", ge=2)
    lost_worker_retries: int = Field(5, alias="taskplan.subtask.lostWorkerRetries", ge=0)
    metrics_port: int = Field(0, alias="taskplan.metrics.port", ge=0, le=65535)
    max_in_flight_subtasks_per_table: int = Field(
        0, alias="taskplan.limits.maxInFlightSubtasksPerTable", ge=0
    )
    max_in_flight_subtasks: int = Field(0, alias="taskplan.limits.maxInFlightSubtasks", ge=0)
    plan_retention_s: int = Field(7 * 86400, alias="taskplan.plan.retentionSeconds", ge=60)
    deep_store_dir: Path | None = Field(None, alias="taskplan.deepStore.dir")
    ingestion_allowed_roots: str = Field("", alias="taskplan.ingestion.allowedRoots")
    export_allowed_roots: str = Field("", alias="taskplan.export.allowedRoots")
    # The data task types run one subtask per CPU on a minion: one DuckDB thread each keeps the CPUs busy
    # without oversubscribing them (a 1M-row purge: 0.68 of plain DuckDB with DuckDB's default, 0.86 with 1).
    duckdb_threads: int = Field(1, alias="taskplan.duckdb.threadsPerSubtask", ge=1, le=256)
    # A running plan read through the API answers from its last snapshot when slower than this (0: wait).
    plan_query_timeout_s: float = Field(2.0, alias="taskplan.api.planQueryTimeoutSeconds", ge=0, le=300)

    @field_validator("plugins")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"

    @property
    def resolved_deep_store_dir(self) -> Path:
        return (self.deep_store_dir or self.data_dir / "deepstore").resolve()

    @property
    def allowed_input_roots(self) -> list[Path]:
        """Directories files may be ingested from (default: ``input/`` under the data directory)."""
        return _roots(self.ingestion_allowed_roots) or [(self.data_dir / "input").resolve()]

    @property
    def allowed_export_roots(self) -> list[Path]:
        """Directories DataExportTask may write Parquet files under (default: ``export/`` there)."""
        return _roots(self.export_allowed_roots) or [(self.data_dir / "export").resolve()]

    def property(self, key: str, default: str | None = None) -> str | None:
        """Any property by its dotted name, typed or not (e.g. principals)."""
        for name, info in type(self).model_fields.items():
            if info.alias == key:
                value = getattr(self, name)
                return None if value is None else _render(value)
        extra = self.model_extra or {}
        value = extra.get(key)
        return default if value is None else str(value)

    def properties_with_prefix(self, prefix: str) -> dict[str, str]:
        extra = self.model_extra or {}
        return {k: str(v) for k, v in extra.items() if k.startswith(prefix)}

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        merged = self.as_properties()
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return Settings.model_validate(merged)

    def as_properties(self) -> dict[str, Any]:
        values = self.model_dump(by_alias=True)
        values.update(self.model_extra or {})
        return values


def _roots(value: str) -> list[Path]:
    return [Path(part.strip()).expanduser().resolve() for part in value.split(",") if part.strip()]


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_properties(text: str) -> dict[str, str]:
    """Parse the subset of Java properties syntax Pinot configs use: ``key=value`` / ``key: value``."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        separators = [i for i in (line.find("="), line.find(":")) if i > 0]
        if not separators:
            raise ValueError(f"properties line has no '=' or ':': {raw!r}")
        cut = min(separators)
        result[line[:cut].strip()] = line[cut + 1 :].strip()
    return result


def _known_aliases() -> dict[str, str]:
    return {
        str(info.alias).upper().replace(".", "_"): str(info.alias) for info in Settings.model_fields.values()
    }


def environment_properties(environ: Mapping[str, str]) -> dict[str, str]:
    aliases = _known_aliases()
    props: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith("TASKPLAN_PROP_"):
            props[name.removeprefix("TASKPLAN_PROP_")] = value
        elif name in aliases:
            props[aliases[name]] = value
    return props


def load_settings(
    config_file: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if environ is None else environ
    props: dict[str, str] = {}
    path = config_file or env.get("TASKPLAN_CONFIG")
    if path:
        props.update(parse_properties(Path(path).read_text(encoding="utf-8")))
    props.update(environment_properties(env))
    return Settings.model_validate(props)
