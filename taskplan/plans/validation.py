"""Checking a table config's task configs: every configured task type's validate_task_configs, run in a
controller activity (the API has no generators)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import Client

from taskplan.models.table import TableConfig
from taskplan.names import CONTROLLER_TASK_QUEUE
from taskplan.workflows.validation import ValidateTableConfigWorkflow


async def validate_table_config(client: Client, config: TableConfig) -> list[str]:
    """The problems found (empty: valid)."""
    return await client.execute_workflow(
        ValidateTableConfigWorkflow.run,
        config,
        id=f"validate-{config.tableName}-{uuid.uuid4()}",
        task_queue=CONTROLLER_TASK_QUEUE,
        execution_timeout=timedelta(minutes=2),
    )
