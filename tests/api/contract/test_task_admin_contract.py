"""Pinot's wire format of the task endpoints taskplan lacked: deleting and cleaning up tasks, a table's task
metadata, runtime config, subtask progress, debug info, counts, the scheduler and the instances."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from taskplan.catalog import Catalog
from tests.api.contract.conftest import CONTRACT, assert_error, make_table
from tests.support.engine import eventually
from tests.support.minions import start_minion

DELETABLE = "TestContractDeleteTask"  # DELETE /tasks/{taskType} removes every task of it


async def _execute(api: httpx.AsyncClient, task_type: str, table: str, **configs: str) -> dict[str, Any]:
    answer = await api.post(
        "/tasks/execute", json={"taskType": task_type, "tableName": table, "taskConfigs": configs}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _nobody() -> str:
    return f"nobody{uuid.uuid4().hex[:6]}"  # a minion tag no worker polls: subtasks wait


async def _state(api: httpx.AsyncClient, name: str) -> str:
    return str((await api.get(f"/tasks/task/{name}/state")).json())


async def test_delete_one_task_refuses_a_running_one_unless_forced(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    waiting = (await _execute(api, CONTRACT, table, subtasksPerBatch="1", minionInstanceTag=_nobody()))[table]
    assert_error(await api.delete(f"/tasks/task/{waiting}"), 409, "still running", "forceDelete")
    assert await _state(api, waiting) == "IN_PROGRESS"  # nothing deleted
    forced = await api.delete(f"/tasks/task/{waiting}", params={"forceDelete": "true"})
    assert forced.status_code == 200 and forced.json() == {"status": f"Successfully deleted task: {waiting}"}

    async def gone() -> None:
        assert (await api.get(f"/tasks/task/{waiting}/state")).status_code == 404

    await eventually(gone)
    plan = await _execute(
        api, CONTRACT, table, enableTaskOrchestration="true", numBatches="1", subtasksPerBatch="1"
    )
    assert_error(await api.delete(f"/tasks/task/{plan[table]}"), 409, plan["taskPlanId"])
    assert_error(await api.delete(f"/tasks/task/Task_{CONTRACT}_1"), 404)


async def test_delete_and_clean_up_a_task_type(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    done = (await _execute(api, DELETABLE, table, subtasksPerBatch="1"))[table]

    async def completed() -> None:
        assert await _state(api, done) == "COMPLETED"

    await eventually(completed)
    waiting = (await _execute(api, DELETABLE, table, subtasksPerBatch="1", minionInstanceTag=_nobody()))[
        table
    ]
    cleaned = await api.put(f"/tasks/{DELETABLE}/cleanup")
    assert cleaned.json() == {"status": f"Successfully cleaned up tasks for task type: {DELETABLE}"}

    async def only_running_left() -> None:
        listed = (await api.get(f"/tasks/{DELETABLE}/tasks")).json()
        assert listed == [waiting], listed

    await eventually(only_running_left)
    plan = await _execute(
        api, DELETABLE, table, enableTaskOrchestration="true", numBatches="5", sleepMs="2000"
    )
    refused = await api.delete(f"/tasks/{DELETABLE}")
    assert_error(refused, 409, plan["taskPlanId"], "forceDelete")
    assert (await api.get(f"/tasks/taskPlans/isActive/{plan['taskPlanId']}")).json()["active"] is True
    forced = await api.delete(f"/tasks/{DELETABLE}", params={"forceDelete": "true"})
    assert forced.json() == {"status": f"Successfully deleted tasks for task type: {DELETABLE}"}

    async def all_gone() -> None:
        assert (await api.get(f"/tasks/{DELETABLE}/tasks")).json() == []
        assert (await api.get(f"/tasks/{DELETABLE}/tasks/count")).json() == 0

    await eventually(all_gone)
    assert (await api.get(f"/tasks/taskPlans/{plan['taskPlanId']}")).status_code == 404  # whole, not half


async def test_table_task_metadata_state_and_count(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    assert (await api.get(f"/tasks/{CONTRACT}/{table}/metadata")).json() == {}
    plan = await _execute(
        api, CONTRACT, table, enableTaskOrchestration="true", numBatches="1", sleepMs="1500"
    )
    assert_error(await api.delete(f"/tasks/{CONTRACT}/{table}/metadata"), 409, plan["taskPlanId"])

    async def ended() -> None:
        assert (await api.get(f"/tasks/taskPlans/isActive/{plan['taskPlanId']}")).json()["active"] is False

    await eventually(ended, timeout=60)
    metadata = (await api.get(f"/tasks/{CONTRACT}/{table}/metadata")).json()
    assert set(metadata) == {"id", "simpleFields", "mapFields", "listFields"} and metadata["id"] == table
    assert metadata["simpleFields"]["taskPlanId"] == plan["taskPlanId"]
    assert all(isinstance(v, str) for v in metadata["simpleFields"].values())
    states = (await api.get(f"/tasks/{CONTRACT}/{table}/state")).json()
    assert len(states) == 1 and set(states.values()) == {"COMPLETED"}
    count = (await api.get(f"/tasks/{CONTRACT}/tasks/count")).json()
    assert isinstance(count, int) and count >= 1
    deleted = await api.delete(f"/tasks/{CONTRACT}/{table}/metadata")
    assert deleted.json() == {
        "status": f"Successfully deleted metadata for task type: {CONTRACT} from table: {table}"
    }
    assert (await api.get(f"/tasks/{CONTRACT}/{table}/metadata")).json() == {}


async def test_watermarks_read_and_reset_through_the_metadata_endpoints(
    api: httpx.AsyncClient, tables: Catalog
) -> None:
    """Pinot's MergeRollupTaskMetadata and RealtimeToOfflineSegmentsTaskMetadata, from the catalog rows the
    task types keep their watermarks in; DELETE resets them (the next run starts from the oldest data)."""
    offline = await make_table(api)
    realtime = await make_table(api, table_type="REALTIME")
    merge, move = "MergeRollupTask", "RealtimeToOfflineSegmentsTask"
    assert (await api.get(f"/tasks/{merge}/{offline}/metadata")).json() == {}
    tables.segments.put_task_metadata(offline, merge, {"watermarkMap": {"1day": 86_400_000, "1week": 0}})
    tables.segments.put_task_metadata(realtime, move, {"watermarkMs": 172_800_000})
    # Pinot answers the raw ZNRecord (PinotHelixTaskResourceManager.getTaskMetadataByTable), its long fields
    # as strings: MergeRollupTaskMetadata.toZNRecord's watermarkMs_<level>, RealtimeToOffline's watermarkMs.
    assert (await api.get(f"/tasks/{merge}/{offline}/metadata")).json() == {
        "id": offline,
        "simpleFields": {"watermarkMs_1day": "86400000", "watermarkMs_1week": "0"},
        "mapFields": {},
        "listFields": {},
    }
    assert (await api.get(f"/tasks/{move}/{realtime}/metadata")).json() == {
        "id": realtime,
        "simpleFields": {"watermarkMs": "172800000"},
        "mapFields": {},
        "listFields": {},
    }
    deleted = await api.delete(f"/tasks/{merge}/{offline}/metadata")
    assert deleted.json() == {
        "status": f"Successfully deleted metadata for task type: {merge} from table: {offline}"
    }
    assert (await api.get(f"/tasks/{merge}/{offline}/metadata")).json() == {}
    assert tables.segments.task_metadata(offline, merge) is None
    assert (await api.delete(f"/tasks/{move}/{realtime}/metadata")).status_code == 200
    assert tables.segments.task_metadata(realtime, move) is None


async def test_runtime_config_progress_and_debug(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    name = (
        await _execute(api, CONTRACT, table, subtasksPerBatch="2", sleepMs="2500", progressMessage="half way")
    )[table]
    config = (await api.get(f"/tasks/task/{name}/runtime/config")).json()
    assert set(config) == {
        "ConcurrentTasksPerWorker",
        "TaskTimeoutMs",
        "TaskExpireTimeMs",
        "MinionWorkerGroupTag",
    }
    assert (
        all(isinstance(v, str) for v in config.values())
        and config["MinionWorkerGroupTag"] == "minion_untagged"
    )

    async def reported() -> None:
        progress = (await api.get(f"/tasks/subtask/{name}/progress")).json()
        assert progress == {f"{name}_0": "half way", f"{name}_1": "half way"}

    await eventually(reported)
    one = (await api.get(f"/tasks/subtask/{name}/progress", params={"subtaskNames": f"{name}_1,nope"})).json()
    assert list(one) == [f"{name}_1"]
    debug = (await api.get(f"/tasks/task/{name}/debug", params={"verbosity": 1})).json()
    assert list(debug)[:2] == ["taskState", "subtaskCount"] and debug["taskState"] == "IN_PROGRESS"
    assert debug["subtaskCount"]["running"] == 2 and isinstance(debug["startTime"], str)
    info = debug["subtaskInfos"][0]
    assert info["taskId"] == f"{name}_0" and info["state"] == "RUNNING"
    # Pinot's participant is the instance running the subtask, as GET /instances names it.
    assert info["participant"] in (await api.get("/instances")).json()["instances"]
    assert info["taskConfig"]["taskId"] == f"{name}_0"
    assert debug["triggeredBy"] == info["triggeredBy"] == "ADHOC_TRIGGER"

    waiting = (await _execute(api, CONTRACT, table, subtasksPerBatch="1", minionInstanceTag=_nobody()))[table]
    try:

        async def unassigned() -> None:
            progress = (await api.get(f"/tasks/subtask/{waiting}/progress")).json()
            assert progress == {f"{waiting}_0": "No worker has run this subtask"}

        await eventually(unassigned)
    finally:
        await api.delete(f"/tasks/task/{waiting}", params={"forceDelete": "true"})

    async def finished() -> None:
        assert await _state(api, name) == "COMPLETED"

    await eventually(finished)
    quiet = (await api.get(f"/tasks/task/{name}/debug")).json()
    assert (
        "subtaskInfos" not in quiet and quiet["subtaskCount"]["completed"] == 2
    )  # verbosity 0: no COMPLETED
    # The minion that ran an ended subtask is still its participant, as Pinot's Helix job context keeps it.
    done = (await api.get(f"/tasks/task/{name}/debug", params={"verbosity": 1})).json()
    ran_on = {i["taskId"]: i["participant"] for i in done["subtaskInfos"]}
    assert set(ran_on.values()) <= set((await api.get("/instances")).json()["instances"])
    minion = ran_on[f"{name}_0"]
    ended = (await api.get(f"/tasks/subtask/{name}/progress", params={"subtaskNames": f"{name}_0"})).json()
    assert ended == {f"{name}_0": f"No status from worker: {minion}. Got status: COMPLETED from Helix"}
    by_type = (await api.get(f"/tasks/{CONTRACT}/debug")).json()
    assert by_type[name]["taskState"] == "COMPLETED"
    by_table = (await api.get(f"/tasks/{CONTRACT}/{table}/debug")).json()
    assert name in by_table and by_table[name]["subtaskCount"]["total"] == 2
    assert_error(await api.get(f"/tasks/subtask/Task_{CONTRACT}_1/progress"), 404)


async def test_scheduler_from_temporal_schedules(api: httpx.AsyncClient) -> None:
    table = await make_table(
        api, {CONTRACT: {"schedule": "0 0 3 * * ?", "scheduleTimeZone": "Europe/Berlin"}}
    )
    keys = (await api.get("/tasks/scheduler/jobKeys")).json()
    assert {"name": table, "group": CONTRACT} in keys
    details = (
        await api.get("/tasks/scheduler/jobDetails", params={"tableName": table, "taskType": CONTRACT})
    ).json()
    assert details["JobKey"] == {"name": table, "group": CONTRACT}
    [trigger] = details["Triggers"]
    assert trigger["TriggerType"] == "CronTrigger" and trigger["CronExpression"] == "0 0 3 * * ?"
    assert trigger["TimeZone"] == "Europe/Berlin" and isinstance(trigger["NextFireTime"], int)
    info = (await api.get("/tasks/scheduler/information")).json()
    assert {"Version", "SchedulerName", "NumberOfJobsExecuted", "JobDetails"} <= set(info)
    mine = [j for j in info["JobDetails"] if j["JobKey"] == {"name": table, "group": CONTRACT}]
    assert mine and mine[0]["NextFireTime"] == trigger["NextFireTime"]
    missing = await api.get(
        "/tasks/scheduler/jobDetails", params={"tableName": table, "taskType": "TestLegacyTask"}
    )
    assert_error(missing, 404, "Unable to find job detail for table name")
    assert (await api.delete(f"/tables/{table}")).status_code == 200


async def test_instances_are_the_polling_workers(api: httpx.AsyncClient) -> None:
    listed = (await api.get("/instances")).json()
    assert set(listed) == {"instances"}
    minions = [n for n in listed["instances"] if n.startswith("Minion_")]
    # One instance per worker process, named Minion_<host>_<pid> (the session's worker runs in this one),
    # whatever queues and tags it polls.
    here = f"{socket.gethostname()}_{os.getpid()}"
    assert f"Minion_{here}" in minions and f"Controller_{here}" in listed["instances"]
    tagged = (await api.get("/instances", params={"tag": "minion_untagged"})).json()["instances"]
    assert set(tagged) == set(minions)
    one = (await api.get(f"/instances/Minion_{here}")).json()
    assert one["instanceName"] == f"Minion_{here}" and "minion_untagged" in one["tags"]
    assert one["hostName"] == socket.gethostname()
    # Pinot's getInstance, every field of it (a worker has no ports, pools or resource info).
    assert list(one) == [
        "instanceName",
        "hostName",
        "enabled",
        "port",
        "tags",
        "pools",
        "grpcPort",
        "adminPort",
        "queryServicePort",
        "queryMailboxPort",
        "shutdownInProgress",
        "systemResourceInfo",
    ]
    assert one["enabled"] is True and one["shutdownInProgress"] is False and isinstance(one["tags"], list)
    assert_error(await api.get("/instances/Minion_nowhere_1"), 404)


async def test_a_minion_serving_two_tags_is_one_instance_with_both(
    api: httpx.AsyncClient, engine: Client, tmp_path: Path
) -> None:
    """A worker process polls one queue per tag: Pinot's one instance with its tags, not one per tag."""
    tag = f"gold{uuid.uuid4().hex[:6]}"
    await make_table(api, {CONTRACT: {"minionInstanceTag": tag}})  # /instances asks the tags tables name
    address = engine.service_client.config.target_host
    process = start_minion(address, tag, tmp_path / "minion.log", args=["--tag", "minion_untagged"])
    try:
        name = f"Minion_{socket.gethostname()}_{process.pid}"

        async def polling() -> None:
            assert (await api.get("/instances", params={"tag": tag})).json() == {"instances": [name]}

        await eventually(polling, timeout=60)
        one = (await api.get(f"/instances/{name}")).json()
        assert one["tags"] == sorted([tag, "minion_untagged"]) and one["hostName"] == socket.gethostname()
        every = (await api.get("/instances")).json()["instances"]
        assert [n for n in every if n.endswith(f"_{process.pid}")] == [name]
    finally:
        process.terminate()
        process.wait(timeout=30)
