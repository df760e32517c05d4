"""The simplest hand-written Temporal workflow doing what a plan does: per batch, one activity per subtask,
all awaited before the next batch. The benchmarks compare taskplan against it on the same server and workers.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

from taskplan.models.base import WireModel
from taskplan.workflows.activity_defs import SubtaskActivityDefs
from taskplan.workflows.clock import epoch_ms
from taskplan.workflows.models import SubtaskInput

BASELINE_QUEUE = "bench-baseline"


class BaselineInput(WireModel):
    num_batches: int
    subtasks_per_batch: int
    task_queue: str
    table_name_with_type: str


class BaselineBatch(WireModel):
    started_ms: int
    finished_ms: int


@workflow.defn(name="BaselineBatches", sandboxed=False)
class BaselineBatchesWorkflow:
    @workflow.run
    async def run(self, spec: BaselineInput) -> list[BaselineBatch]:
        batches = []
        for b in range(spec.num_batches):
            started = epoch_ms()
            await asyncio.gather(
                *(
                    workflow.execute_activity_method(
                        SubtaskActivityDefs.run_subtask,
                        SubtaskInput(
                            task_type="NoOpTask",
                            subtask_name=f"Task_NoOpTask_{b}_{i}",
                            configs={"tableName": spec.table_name_with_type, "subtaskSleepMs": "0"},
                        ),
                        task_queue=spec.task_queue,
                        start_to_close_timeout=timedelta(minutes=5),
                    )
                    for i in range(spec.subtasks_per_batch)
                )
            )
            batches.append(BaselineBatch(started_ms=started, finished_ms=epoch_ms()))
        return batches
