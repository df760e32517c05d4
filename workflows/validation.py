"""Checking table configs' task configs (plugin code) in a controller activity, for the API.

``TableConfigValidator``: long-lived workflows, ids ``taskplan-validator-<n>`` (a pool of
``VALIDATOR_POOL``, see taskplan/plans/validation.py), that take each check as an Update (``validate``),
so table creates, updates and triggers add no execution to the workflow list. Each check is a local
activity (one workflow task, no activity round trip through the server). A validator continues as new
when Temporal suggests it (or after ``MAX_CHECKS_PER_RUN`` checks), once the checks in flight answered.

``ValidateTableConfig`` (one workflow per check) is what 0.2.0 started; it stays registered so that its
histories replay, and nothing starts it any more.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from taskplan.models.table import TableConfig
    from taskplan.workflows.activity_defs import GenerationActivityDefs

VALIDATOR_ID_PREFIX = "taskplan-validator-"
VALIDATOR_POOL = 4  # at most 10 Updates in flight each (the server's default): 40 checks at once
MAX_CHECKS_PER_RUN = 500  # about 5 history events each


def validator_id(index: int) -> str:
    return f"{VALIDATOR_ID_PREFIX}{index}"


async def _validate(table_config: TableConfig, summary: str | None = None) -> list[str]:
    return await workflow.execute_local_activity_method(
        GenerationActivityDefs.validate_task_configs,
        table_config,
        start_to_close_timeout=timedelta(seconds=60),
        retry_policy=RetryPolicy(maximum_attempts=3),
        summary=summary,
    )


@workflow.defn(name="TableConfigValidator", sandboxed=False)
class TableConfigValidatorWorkflow:
    def __init__(self) -> None:
        self._checks = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(
            lambda: self._checks >= MAX_CHECKS_PER_RUN or workflow.info().is_continue_as_new_suggested()
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new()

    @workflow.update
    async def validate(self, table_config: TableConfig) -> list[str]:
        """The problems found in the table config's task configs (empty: valid)."""
        self._checks += 1
        return await _validate(table_config, f"validate the task configs of {table_config.tableName}"[:200])


@workflow.defn(name="ValidateTableConfig")
class ValidateTableConfigWorkflow:
    @workflow.run
    async def run(self, table_config: TableConfig) -> list[str]:
        return await _validate(table_config)
