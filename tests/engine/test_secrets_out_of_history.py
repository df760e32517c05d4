"""No secret enters Temporal: plans that use S3 credentials (moto), an API with Basic principals, and an
export whose PostgreSQL URL carries a password (refused before anything reaches Temporal), then every
event of every history of the namespace (a dev server of this test's own), payloads decoded, is searched
for the secrets. The Web UI and anyone with access to the namespace read all of it in clear."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToJson
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.names import SearchAttributes
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.storage import open_store
from taskplan.worker import WorkerOptions, build_workers, run_workers
from tests.api.test_auth import P, basic
from tests.api.test_tables_and_triggers_api import wait_inactive
from tests.data.test_data_plans import create, execute
from tests.support.api import api_client
from tests.support.data import event, write_csv
from tests.support.s3 import MotoServer
from tests.support.tasktypes import ALL_SPECS

API_PASSWORD = "api-pa55word-xyzzy"
PG_PASSWORD = "pg-pa55word-plugh"


async def history_texts(client: Client) -> list[str]:
    """Every event of every workflow history in the namespace as JSON, with each payload's data decoded."""
    texts = []
    async for execution in client.list_workflows():
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        async for entry in handle.fetch_history_events():
            texts.append(MessageToJson(entry))
            stack: list[Any] = [entry]
            while stack:  # every Payload anywhere in the event: its data as text
                message = stack.pop()
                if type(message).__name__ == "Payload":
                    texts.append(message.data.decode("utf-8", "replace"))
                    continue
                for _, value in message.ListFields():
                    if hasattr(value, "ListFields"):
                        stack.append(value)
                    elif hasattr(value, "values") and callable(value.values):  # a map
                        stack.extend(v for v in value.values() if hasattr(v, "ListFields"))
                    elif not isinstance(value, (str, bytes, int, float, bool)):  # repeated
                        stack.extend(v for v in value if hasattr(v, "ListFields"))
    return texts


async def test_no_secret_enters_any_history(moto_server: MotoServer, tmp_path: Path) -> None:
    bucket = moto_server.create_bucket()
    properties = {
        "taskplan.dataDir": str(tmp_path / "data"),
        "taskplan.deepStore.dir": f"s3://{bucket}/deep",
        "taskplan.ingestion.allowedRoots": f"s3://{bucket}/in",
        "taskplan.export.allowedRoots": f"s3://{bucket}/out",
        P: "admin",
        f"{P}.admin.password": API_PASSWORD,
        **moto_server.properties(),
    }
    settings = Settings.model_validate(properties)
    secrets = [API_PASSWORD, PG_PASSWORD, moto_server.secret_access_key]
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SearchAttributes.ALL,
        dev_server_log_level="error",
    )
    try:
        client = await Client.connect(
            env.client.service_client.config.target_host, data_converter=pydantic_data_converter
        )
        workers = build_workers(
            client,
            settings,
            build_registry(ALL_SPECS, entry_points_group=None),
            catalog,
            WorkerOptions(role="both", max_concurrent_subtasks=4, graceful_shutdown_seconds=2),
            catalog=catalog,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(run_workers(workers, stop))
        admin = basic("admin", API_PASSWORD)
        try:
            async with api_client(client, catalog, properties) as http:
                http.headers.update(admin)
                raw = f"sec{uuid.uuid4().hex[:8]}"
                table = await create(http, raw)
                store = open_store(f"s3://{bucket}", settings)
                for part in range(2):
                    rows = [event(part * 10 + i, "US" if i % 2 else "FR") for i in range(4)]
                    store.put_file(
                        write_csv(tmp_path / f"p{part}.csv", rows), f"in/{raw}/p{part}.csv", move=True
                    )
                plans = []
                ingestion = await execute(
                    http, "FileIngestionTask", table,
                    inputDirURI=f"s3://{bucket}/in/{raw}", inputFormat="csv",
                )  # fmt: skip
                assert ingestion.status_code == 200, ingestion.text
                plans.append(ingestion.json()["taskPlanId"])
                await wait_inactive(http, plans[-1])
                # An export whose connection string carries a password: refused before Temporal sees it,
                # as an ad hoc trigger and in a table config (even with the task validation skipped).
                target = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:5432/test"
                refusals = [await execute(http, "DataExportTask", table, **{"externalTable.target": target})]
                config = {
                    "tableName": raw,
                    "tableType": "OFFLINE",
                    "task": {"taskTypeConfigsMap": {"DataExportTask": {"externalTable.target": target}}},
                }
                for skip in ("", "TASK"):
                    refusals.append(
                        await http.put(f"/tables/{raw}", json=config, params={"validationTypesToSkip": skip})
                    )
                for plan_id in plans:
                    await wait_inactive(http, plan_id)
                    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
                    assert plan["status"] == "COMPLETED", plan
        finally:
            stop.set()
            await running
        texts = await history_texts(client)
        assert len(texts) > 50  # the plan, its batches and the validators are there
        assert any(bucket in t for t in texts)  # the S3 locations are (they are no secret)
        for secret in secrets:
            leaks = [t[:300] for t in texts if secret in t]
            assert not leaks, f"{secret[:4]}... found in {len(leaks)} history entries, e.g. {leaks[0]}"
        # The export with a password was refused, saying why without the password (checked after the
        # histories, so a leak shows as one).
        for refused in refusals:
            assert refused.status_code == 400 and "carries a password" in refused.text, refused.text
            assert PG_PASSWORD not in refused.text
    finally:
        await env.shutdown()
        catalog.close()
