"""Request and response models of the REST API that are not plan models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StatusResponse(BaseModel):
    status: str


class AdhocTaskConfig(BaseModel):
    """Pinot's ad hoc task request (POST /tasks/execute)."""

    model_config = ConfigDict(
        extra="ignore",  # Pinot ignores unknown keys
        json_schema_extra={
            "examples": [
                {
                    "taskType": "SegmentPurgeTask",
                    "tableName": "myTable_OFFLINE",
                    "taskConfigs": {"enableTaskOrchestration": "true", "purgeFilter": "country = 'XX'"},
                }
            ]
        },
    )

    taskType: str = Field(max_length=100)
    tableName: str = Field(max_length=200)
    taskName: str | None = Field(None, max_length=200)
    taskConfigs: dict[str, str] = Field(default_factory=dict, max_length=200)


class PlanCreated(BaseModel):
    """Answer of an orchestrated trigger: the new plan."""

    taskPlanId: str
    tableNameWithType: str
    taskType: str
