"""ValidateTableConfig: runs the task types' config validation (plugin code) in an activity for the API.

Every trigger through the API validates first, so this is on the path of a burst of triggers: the
activity is a local one (one workflow task instead of an activity round trip through the server)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from taskplan.models.table import TableConfig
    from taskplan.workflows.activity_defs import GenerationActivityDefs


@workflow.defn(name="ValidateTableConfig")
class ValidateTableConfigWorkflow:
    @workflow.run
    async def run(self, table_config: TableConfig) -> list[str]:
        return await workflow.execute_local_activity_method(
            GenerationActivityDefs.validate_task_configs,
            table_config,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
