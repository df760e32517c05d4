"""How long a burst of table-config checks takes (the API validates every table create, update and trigger):
N concurrent checks through the validator workflows' Updates, on a fresh dev server with one controller
worker; with ``--per-call``, as 0.2.0 did it (one ValidateTableConfig workflow per check), for comparison.
``python -m bench.validation_burst [N] [--per-call]``; prints the figures as JSON."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.models.table import TableConfig
from taskplan.names import CONTROLLER_TASK_QUEUE, SearchAttributes
from taskplan.plans.validation import validate_table_config
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.worker import WorkerOptions, build_workers, run_workers
from taskplan.workflows.validation import ValidateTableConfigWorkflow


async def per_call(client: Client, config: TableConfig) -> list[str]:
    return await client.execute_workflow(
        ValidateTableConfigWorkflow.run,
        config,
        id=f"validate-{uuid.uuid4()}",
        task_queue=CONTROLLER_TASK_QUEUE,
    )


async def main(count: int, old: bool) -> None:
    check = per_call if old else validate_table_config
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SearchAttributes.ALL,
        dev_server_log_level="error",
    )
    client = await Client.connect(
        env.client.service_client.config.target_host, data_converter=pydantic_data_converter
    )
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(f"sqlite:///{Path(tmp) / 'catalog.db'}")
        catalog.migrate()
        settings = Settings.model_validate({"taskplan.dataDir": tmp})
        registry = build_registry("", entry_points_group="taskplan.task_types")
        options = WorkerOptions(role="controller", max_concurrent_subtasks=1, graceful_shutdown_seconds=1)
        workers = build_workers(client, settings, registry, catalog, options, catalog=catalog)
        stop = asyncio.Event()
        running = asyncio.create_task(run_workers(workers, stop))
        config = TableConfig.model_validate(
            {"tableName": "t", "tableType": "OFFLINE", "task": {"taskTypeConfigsMap": {"NoOpTask": {}}}}
        )
        await validate_table_config(client, config)  # the validators started
        took: list[float] = []

        async def one() -> None:
            began = time.perf_counter()
            assert await check(client, config) == []
            took.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        total = time.perf_counter() - began
        stop.set()
        await running
    await env.shutdown()
    took.sort()
    p99 = took[int(0.99 * (count - 1))]
    figures = {
        "way": "workflow per check" if old else "validator Updates",
        "checks": count,
        "total_s": round(total, 2),
        "per_s": round(count / total, 1),
    }
    figures |= {"p50_ms": round(statistics.median(took) * 1000), "p99_ms": round(p99 * 1000)}
    print(json.dumps(figures))


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a.isdigit()]
    asyncio.run(main(numbers[0] if numbers else 200, "--per-call" in sys.argv))
