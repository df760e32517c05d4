"""CronTrigger: what a table config's cron Schedule starts at each firing.

It runs one trigger cycle for its table and task type in an activity (which re-reads the table config, so a
changed config applies from the next firing): create a plan (source TABLE_CONFIG), skip because a plan is
active (counted in scheduledTriggerActivePlanConflict), or take the legacy one-shot flow. A firing whose
generation failed ends FAILED, so it shows in the Temporal UI and in `temporal workflow list`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from taskplan.models.errors import TABLE_NOT_FOUND
from taskplan.models.plan import CycleResult
from taskplan.workflows.activity_defs import TriggerActivityDefs
from taskplan.workflows.models import CronTriggerInput

TRIGGER_FAILED = "TriggerGenerationFailed"


@workflow.defn(name="CronTrigger", sandboxed=False)
class CronTriggerWorkflow:
    @workflow.run
    async def run(self, trigger: CronTriggerInput) -> CycleResult:
        result = await workflow.execute_activity_method(
            TriggerActivityDefs.run_scheduled_trigger,
            trigger,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=[TABLE_NOT_FOUND]),
        )
        if result.errors:
            raise ApplicationError(
                "; ".join(f"{table}: {why}" for table, why in sorted(result.errors.items())),
                result.model_dump(mode="json"),
                type=TRIGGER_FAILED,
                non_retryable=True,
            )
        return result
