"""Pinot's table config and schema, the parts taskplan reads; unknown keys are kept as given."""

from __future__ import annotations

import re
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskplan.names import TableType, split_table_name_with_type, table_name_with_type, validate_task_type

STREAM_CONFIGS = "streamConfigs"
FLUSH_ROWS = "realtime.segment.flush.threshold.rows"
FLUSH_TIME = "realtime.segment.flush.threshold.time"
MAX_FLUSH_ROWS = 2**31 - 1  # Pinot reads it as a Java int
_ROW_COUNT = re.compile(r"[0-9]{1,10}")  # ASCII digits, few enough for int() to convert at once
# Pinot periods (TimeUtils.convertPeriodToMillis): days, hours, minutes, seconds, each optional but in this
# order, as in 1d, 6h, 4h30m, 1d12h; taskplan also takes milliseconds last (500ms, 1s500ms).
_PERIOD = re.compile(
    r"(?:([0-9]{1,12})\s*d\s*)?(?:([0-9]{1,12})\s*h\s*)?(?:([0-9]{1,12})\s*m(?!s)\s*)?"
    r"(?:([0-9]{1,12})\s*s\s*)?(?:([0-9]{1,12})\s*ms)?",
    re.IGNORECASE,
)
_PERIOD_UNITS_MS = (86_400_000, 3_600_000, 60_000, 1000, 1)


def parse_period_ms(value: str) -> int:
    """A Pinot period in milliseconds: ``1d``, ``6h``, ``30m``, ``10s``, compounds such as ``4h30m`` or
    ``1d12h`` (units largest first), and ``500ms``. ValueError for anything else."""
    text = value.strip()
    match = _PERIOD.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"{value[:40]!r} is not a period such as 1d, 6h, 4h30m, 10s or 500ms")
    return sum(int(n) * unit for n, unit in zip(match.groups(), _PERIOD_UNITS_MS, strict=True) if n)


PinotDataType = Literal[
    "INT", "LONG", "FLOAT", "DOUBLE", "BIG_DECIMAL", "BOOLEAN", "TIMESTAMP", "STRING", "JSON", "BYTES"
]


class _PinotJson(BaseModel):
    """Pinot JSON is camelCase already; fields are declared with their wire names."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FieldSpec(_PinotJson):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dataType: PinotDataType
    singleValueField: bool = True
    format: str | None = None
    granularity: str | None = None
    defaultNullValue: str | int | float | bool | None = None  # Pinot's default per type when unset


class Schema(_PinotJson):
    schemaName: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    dimensionFieldSpecs: list[FieldSpec] = Field(default_factory=list)
    metricFieldSpecs: list[FieldSpec] = Field(default_factory=list)
    dateTimeFieldSpecs: list[FieldSpec] = Field(default_factory=list)
    primaryKeyColumns: list[str] | None = None

    @property
    def fields(self) -> list[FieldSpec]:
        return [*self.dimensionFieldSpecs, *self.metricFieldSpecs, *self.dateTimeFieldSpecs]

    @model_validator(mode="after")
    def _unique_fields(self) -> Schema:
        names = [f.name for f in self.fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"schema {self.schemaName!r} declares these columns twice: {', '.join(duplicates)}"
            )
        if not names:
            raise ValueError(f"schema {self.schemaName!r} declares no columns")
        return self


class BatchIngestionConfig(_PinotJson):
    segmentIngestionType: Literal["APPEND", "REFRESH"] = "APPEND"
    segmentIngestionFrequency: str | None = None
    consistentDataPush: bool = False


class IngestionConfig(_PinotJson):
    batchIngestionConfig: BatchIngestionConfig | None = None


class TableTaskConfig(_PinotJson):
    taskTypeConfigsMap: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("taskTypeConfigsMap")
    @classmethod
    def _valid_task_types(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for task_type in value:
            validate_task_type(task_type)
        return value


class TableConfig(_PinotJson):
    tableName: str
    tableType: TableType
    segmentsConfig: dict[str, Any] = Field(default_factory=dict)
    tableIndexConfig: dict[str, Any] = Field(default_factory=dict)
    ingestionConfig: IngestionConfig | None = None
    task: TableTaskConfig | None = None

    @model_validator(mode="after")
    def _normalise_name(self) -> TableConfig:
        # Pinot accepts "myTable" or "myTable_OFFLINE" in tableName; store the name with type.
        name = self.tableName
        try:
            raw, table_type = split_table_name_with_type(name)
        except ValueError:
            raw, table_type = name, self.tableType
        if table_type != self.tableType:
            raise ValueError(f"tableName {name!r} does not match tableType {self.tableType}")
        self.tableName = table_name_with_type(raw, self.tableType)
        return self

    @property
    def table_name_with_type(self) -> str:
        return self.tableName

    @property
    def raw_table_name(self) -> str:
        return split_table_name_with_type(self.tableName)[0]

    def task_type_configs(self, task_type: str) -> dict[str, str] | None:
        if self.task is None:
            return None
        return self.task.taskTypeConfigsMap.get(task_type)

    @property
    def stream_configs(self) -> dict[str, str]:
        configs = self.tableIndexConfig.get(STREAM_CONFIGS) or {}
        return {str(k): str(v) for k, v in configs.items()} if isinstance(configs, dict) else {}

    def stream_config_problems(self) -> list[str]:
        """Why the stream configs taskplan reads cannot be used, naming each key; [] if they can. Checked
        when a table config is saved (a config read back from the catalog is taken as stored), so that a
        flush threshold such as "abc" is a 400 then, not a failure of every later ingest."""
        where = f"tableIndexConfig.{STREAM_CONFIGS}"
        raw = self.tableIndexConfig.get(STREAM_CONFIGS)
        if raw is not None and not isinstance(raw, dict):
            return [f"{where} must be an object of string values"]
        configs = self.stream_configs
        problems = []
        rows = configs.get(FLUSH_ROWS)
        if rows is not None and not (_ROW_COUNT.fullmatch(rows.strip()) and 0 < int(rows) <= MAX_FLUSH_ROWS):
            problems.append(
                f"{where}.{FLUSH_ROWS}: {rows[:40]!r} is not a row count between 1 and {MAX_FLUSH_ROWS}"
            )
        period = configs.get(FLUSH_TIME)
        if period is not None:
            try:
                positive = parse_period_ms(period) > 0
            except ValueError:
                positive = False
            if not positive:
                problems.append(
                    f"{where}.{FLUSH_TIME}: {period[:40]!r} is not a period such as 6h, 30m, 10s, 1d or 500ms"
                )
        return problems


class TableConfigSource(Protocol):
    """Where generators' table configs and schemas come from (the catalog)."""

    def get_table_config(self, table_name_with_type: str) -> TableConfig | None: ...

    def get_schema_for_table(self, table_name_with_type: str) -> Schema | None: ...
