"""Pinot's table config and schema, the parts taskplan reads; unknown keys are kept as given."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskplan.names import TableType, split_table_name_with_type, table_name_with_type, validate_task_type

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
        configs = self.tableIndexConfig.get("streamConfigs") or {}
        return {str(k): str(v) for k, v in configs.items()} if isinstance(configs, dict) else {}
