"""Faults the engine must survive: a minion killed mid-subtask, a restarted dev server, CLI steering,
and a batch far over Temporal's 2,000 pending-activity limit."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.catalog.schema import tasks
from taskplan.models.plan import PlanQuery, PlanSource, PlanStatus
from taskplan.models.task import SubtaskQuery, SubtaskState, TaskState
from taskplan.names import plan_workflow_id
from taskplan.plans import PlanServices
from taskplan.registry import build_registry
from taskplan.runtime import dev_server_command, wait_for_port
from taskplan.settings import Settings
from taskplan.worker import WorkerOptions, build_workers, run_workers
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.api import api_client
from tests.support.engine import TEST_OPTIONS, add_table, eventually
from tests.support.minions import start_minion
from tests.support.tasktypes import ALL_SPECS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "graceful-stop"])
async def test_minion_stopped_mid_subtask_hands_it_to_another(
    stop_signal: signal.Signals,
    plans: PlanServices,
    temporal_client: Client,
    tables: Catalog,
    tmp_path: Path,
    minion_procs: list[subprocess.Popen[bytes]],
) -> None:
    tag = f"kill-{uuid.uuid4().hex[:8]}"
    table = f"k{uuid.uuid4().hex[:10]}_OFFLINE"
    single = "TestSingleAttemptTask"  # one attempt per subtask, Pinot's default
    add_table(tables, table, {single: {"minionInstanceTag": tag}})
    address = temporal_client.service_client.config.target_host
    for i in range(2):
        minion_procs.append(start_minion(address, tag, tmp_path / f"minion{i}.log"))
    markers = tmp_path / "markers"
    markers.mkdir()
    plan_id = await plans.starter.start_plan(
        table,
        single,
        PlanSource.ADHOC_CONFIG,
        {
            "numBatches": "1",
            "subtasksPerBatch": "1",
            "sleepMs": "4000",
            "markerDir": str(markers),
        },
    )

    async def started() -> Path:
        found = list(markers.glob("*.started"))
        assert found
        return found[0]

    marker = await eventually(started, timeout=60)
    victim_pid = int(marker.name.split(".")[-2])
    victim = next(p for p in minion_procs if p.pid == victim_pid)
    # SIGKILL: the heartbeat stops and times out. SIGTERM: the worker's graceful shutdown (1 s here) runs
    # out, the executor is cancelled and the subtask is handed back at once.
    victim.send_signal(stop_signal)
    await wait_for_end(plans.reader, plan_id, timeout=90)

    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.COMPLETED
    details = await plans.task_reader.batch_details(plan.batches[0].submitted_task_name)
    record = details.subtasks[0]
    assert record.state == SubtaskState.COMPLETED
    assert record.lost_worker_retries == 1
    assert record.attempts == 1  # losing the minion did not use up the subtask's only attempt
    if stop_signal == signal.SIGTERM:
        assert victim.wait(timeout=30) == 0  # a clean exit, not a crash
    done = list(markers.glob("*.done"))
    assert len(done) == 1 and int(done[0].name.split(".")[-2]) != victim_pid


async def run_cli(*args: str) -> str:
    """Run the `temporal` CLI off the event loop: the in-process worker must keep answering queries."""
    proc = await asyncio.to_thread(
        subprocess.run, [temporal_cli(), *args], check=True, capture_output=True, text=True, timeout=60
    )
    return proc.stdout


async def test_abort_through_the_temporal_cli(
    plans: PlanServices, temporal_client: Client, table: str
) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "50", "sleepMs": "500"}
    )

    async def running() -> None:
        assert (await plans.reader.get_plan(plan_id)).num_batches >= 1

    await eventually(running)
    address = temporal_client.service_client.config.target_host
    workflow_id = plan_workflow_id(table, COUNTING)
    await run_cli(
        "workflow",
        "signal",
        "--address",
        address,
        "--workflow-id",
        workflow_id,
        "--name",
        "abort",
        "--input",
        json.dumps({"reason": "stopped from the CLI"}),
    )
    await wait_for_end(plans.reader, plan_id)
    # The same plan, read back through `temporal workflow query`, carries the documented camelCase fields.
    out = await run_cli(
        "workflow",
        "query",
        "--address",
        address,
        "--workflow-id",
        workflow_id,
        "--name",
        "details",
        "--output",
        "json",
    )
    queried = json.loads(out)
    result = queried.get("queryResult", queried)
    result = result[0] if isinstance(result, list) else result
    assert result["planId"] == plan_id
    assert result["status"] == "CANCELLED"
    assert "stopped from the CLI" in result["statusMessage"]


@pytest.mark.timeout(660)
async def test_a_batch_of_ten_thousand_subtasks_completes(plans: PlanServices, table: str) -> None:
    """10,000 activities through the dev server: about 135 s on an idle 2-CPU machine. The bound is generous:
    on a starved machine the first batch step, which starts 1,000 subtask activities at once, can pass the
    SDK's 2 s deadlock limit and its workflow task is retried until the controller gets the CPU (speed is
    the benchmarks' business, not this test's)."""
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1", "subtasksPerBatch": "10000"}
    )
    await wait_for_end(plans.reader, plan_id, timeout=600)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.COMPLETED
    assert plan.batches[0].num_subtasks == 10_000
    assert plan.inputs_processed == 10_000
    details = await plans.task_reader.batch_details(
        plan.batches[0].submitted_task_name, SubtaskQuery(offset=9_990, limit=1000)
    )
    assert details.task_state == TaskState.COMPLETED
    assert details.totals["items"] == 10_000
    assert [s.subtask_name.rsplit("_", 1)[1] for s in details.subtasks] == [
        str(i) for i in range(9_990, 10_000)
    ]
    assert {s.state for s in details.subtasks} == {SubtaskState.COMPLETED}


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[tuple[Settings, list[subprocess.Popen[bytes]]]]:
    settings = Settings.model_validate(
        {"temporal.address": f"127.0.0.1:{free_port()}", "taskplan.dataDir": str(tmp_path)}
    )
    servers: list[subprocess.Popen[bytes]] = []
    yield settings, servers
    for server in servers:
        if server.poll() is None:
            server.terminate()
        server.wait()


def start_server(settings: Settings, servers: list[subprocess.Popen[bytes]]) -> None:
    proc = subprocess.Popen(
        dev_server_command(settings, headless=True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    servers.append(proc)
    host, _, port = settings.temporal_address.rpartition(":")
    wait_for_port(host, int(port), 60, proc)


async def own_stack(
    settings: Settings, servers: list[subprocess.Popen[bytes]]
) -> tuple[Client, Catalog, str, list[Worker]]:
    """Start the test's own dev server; a client, a catalog with one table, and workers (not yet running)
    that record the plans' batches and snapshots in that catalog."""
    start_server(settings, servers)
    client = await Client.connect(settings.temporal_address, data_converter=pydantic_data_converter)
    tables = Catalog(settings.resolved_catalog_url)
    tables.migrate()
    table = add_table(tables, f"r{uuid.uuid4().hex[:10]}_OFFLINE")
    return client, tables, table, stack_workers(client, settings, tables)


def stack_workers(client: Client, settings: Settings, tables: Catalog) -> list[Worker]:
    return build_workers(
        client,
        settings,
        build_registry(ALL_SPECS, entry_points_group=None),
        tables,
        WorkerOptions(max_concurrent_subtasks=10, graceful_shutdown_seconds=1),
        catalog=tables,
    )


async def test_plan_continues_after_the_dev_server_restarts(
    own_server: tuple[Settings, list[subprocess.Popen[bytes]]],
) -> None:
    settings, servers = own_server
    client, tables, table, workers = await own_stack(settings, servers)
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    try:
        plans = PlanServices.build(client, tables, TEST_OPTIONS)
        plan_id = await plans.starter.start_plan(
            table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "4", "sleepMs": "700"}
        )

        async def second_batch() -> None:
            assert (await plans.reader.get_plan(plan_id)).num_batches >= 2

        await eventually(second_batch)
        servers[0].terminate()
        servers[0].wait(timeout=30)
        start_server(settings, servers)
        await wait_for_end(plans.reader, plan_id, timeout=120)
        plan = await plans.reader.get_plan(plan_id)
        assert plan.status == PlanStatus.COMPLETED
        assert [b.batch_sequence for b in plan.batches] == [0, 1, 2, 3]
    finally:
        stop.set()
        await running


async def test_a_paused_plan_stays_paused_across_a_worker_and_dev_server_restart(
    own_server: tuple[Settings, list[subprocess.Popen[bytes]]],
) -> None:
    """The pause lives in the plan's workflow (history, carried by continue-as-new): workers and the dev
    server restarted while paused, the plan is still paused with its reason and starts no batch until
    resumed."""
    settings, servers = own_server
    client, tables, table, workers = await own_stack(settings, servers)
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    try:
        plans = PlanServices.build(client, tables, TEST_OPTIONS)
        plan_id = await plans.starter.start_plan(
            table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "4", "sleepMs": "300"}
        )
        handle = client.get_workflow_handle(plan_workflow_id(table, COUNTING))

        async def first_batch() -> None:
            assert (await plans.reader.get_plan(plan_id)).num_batches >= 1

        await eventually(first_batch)
        await handle.signal("pause", {"reason": "disk swap"})

        async def paused_between_batches() -> int:
            plan = await plans.reader.get_plan(plan_id)
            assert plan.paused and plan.status_message == "paused: disk swap", plan.status_message
            assert all(b.task_state != TaskState.IN_PROGRESS for b in plan.batches)
            return plan.num_batches

        at_pause = await eventually(paused_between_batches)
    finally:
        stop.set()
        await running
    servers[0].terminate()
    servers[0].wait(timeout=30)
    start_server(settings, servers)
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(stack_workers(client, settings, tables), stop))
    try:
        await asyncio.sleep(2)  # unpaused, the plan would have started its next batches by now
        plan = await plans.reader.get_plan(plan_id, live=True)  # the workflow, replayed
        assert plan.status == PlanStatus.ACTIVE and plan.paused and plan.pause_reason == "disk swap"
        assert plan.num_batches == at_pause < 4
        await handle.signal("resume")
        await wait_for_end(plans.reader, plan_id, timeout=60)
        plan = await plans.reader.get_plan(plan_id)
        assert plan.status == PlanStatus.COMPLETED and plan.num_batches == 4 and not plan.paused
    finally:
        stop.set()
        await running


async def test_a_plan_whose_controller_does_not_answer_is_read_from_the_catalog_at_once(
    own_server: tuple[Settings, list[subprocess.Popen[bytes]]],
) -> None:
    """GET /tasks/taskPlans/{planId} stays fast when the plan cannot answer (its controller busy or down):
    after taskplan.api.planQueryTimeoutSeconds (0.1 s) its snapshot answers with its batch records, never
    older than the batch the plan recorded last (here the one running when its controller stopped);
    ``?live=true`` waits for the plan itself."""
    settings, servers = own_server
    client, tables, table, workers = await own_stack(settings, servers)
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    plans = PlanServices.build(client, tables, TEST_OPTIONS)
    try:
        plan_id = await plans.starter.start_plan(
            table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "50", "sleepMs": "1500"}
        )

        async def third_batch_running() -> None:
            assert len((await plans.reader.get_plan(plan_id)).batches) >= 3

        await eventually(third_batch_running)
    finally:
        stop.set()
        await running
    with tables.engine.connect() as conn:  # the last batch the plan recorded, as the catalog has it
        recorded = conn.execute(
            select(tasks.c.batch_sequence, tasks.c.task_name, tasks.c.state, tasks.c.num_subtasks)
            .where(tasks.c.plan_id == plan_id)
            .order_by(tasks.c.batch_sequence.desc())
            .limit(1)
        ).one()
    assert recorded.batch_sequence >= 2 and recorded.state == TaskState.IN_PROGRESS.value
    # No controller polls any more: the plan cannot answer, the catalog does.
    async with api_client(client, tables, {"taskplan.dataDir": str(settings.data_dir)}) as http:
        clock = asyncio.get_running_loop().time
        started = clock()
        response = await http.get(f"/tasks/taskPlans/{plan_id}")
        assert clock() - started < 1.0, "not answered from the catalog within the budget"
        plan = response.json()
        assert plan["planId"] == plan_id and plan["status"] == "ACTIVE"
        last = plan["batches"][-1]
        assert (last["batchSequence"], last["submittedTaskName"], last["taskState"]) == (
            recorded.batch_sequence,
            recorded.task_name,
            "IN_PROGRESS",
        )
        assert [b["batchSequence"] for b in plan["batches"]] == list(range(recorded.batch_sequence + 1))
        assert plan["numBatches"] == recorded.batch_sequence + 1  # the running batch counts
        assert plan["inputsBeingProcessed"] == last["inputsInBatch"]
        message = f"batch {recorded.batch_sequence} ({recorded.task_name}) running"
        assert plan["statusMessage"] == f"{message}: {recorded.num_subtasks} subtasks"
        with pytest.raises(TimeoutError):  # live=true: the plan's own answer, which cannot come
            await asyncio.wait_for(http.get(f"/tasks/taskPlans/{plan_id}", params={"live": "true"}), 2)


async def test_a_plan_of_hundreds_of_batches_continues_as_new_by_itself(
    plans: PlanServices, engine: Client, table: str
) -> None:
    """Continue-as-new when Temporal suggests it (no forcing): history per run stays bounded.

    600 batches take about 3.5 minutes here (each batch costs ~340 ms of dev-server dispatch); the
    20,000-batch plan belongs to the benchmarks."""
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "600", "subtasksPerBatch": "1"}
    )
    await wait_for_end(plans.reader, plan_id, timeout=290)
    plan = await plans.reader.get_plan(plan_id, PlanQuery(batch_limit=5))
    assert plan.status == PlanStatus.COMPLETED
    assert plan.num_batches == 600 and plan.inputs_processed == 600
    assert [b.batch_sequence for b in plan.batches] == list(range(595, 600))
    runs = [e async for e in engine.list_workflows(f"TaskPlanId = '{plan_id}' AND WorkflowType = 'TaskPlan'")]
    assert len(runs) >= 2  # it continued as new by itself
    lengths = [e.history_length for e in runs]
    assert max(lengths) < 10_240, lengths  # each run stays under Temporal's history warning
