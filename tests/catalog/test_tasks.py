"""Task records of plan batches on SQLite and PostgreSQL: names, one row per batch, ends, counts, cleanup."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy
from alembic import command
from alembic.config import Config

from taskplan.catalog import Catalog
from taskplan.catalog.catalog import MIGRATIONS
from taskplan.models.plan import BatchEnd, PlanEnd, PlanSource, PlanStatus, TaskPlan
from taskplan.models.task import BatchResult, GeneratedBatch, SubtaskRecord, SubtaskState, TaskState
from taskplan.names import subtask_name

TYPE = "SegmentPurgeTask"


def batch(n: int) -> GeneratedBatch:
    return GeneratedBatch(
        common={"tableName": "t_OFFLINE"}, subtasks=[{"segment": f"s{i}"} for i in range(n)]
    )


def start(catalog: Catalog, name: str, plan: str, sequence: int, n: int = 3, table: str = "t_OFFLINE") -> str:
    return catalog.tasks.record_started(
        name,
        table_name=table,
        plan_id=plan,
        batch_sequence=sequence,
        submitted_ms=int(name.rsplit("_", 1)[1]),
        batch=batch(n),
    )


def test_a_running_batch_then_its_end(catalog: Catalog) -> None:
    name = start(catalog, f"Task_{TYPE}_1000", "plan-a", 0)
    assert name == f"Task_{TYPE}_1000"
    stored = catalog.tasks.get(name)
    assert stored is not None
    assert (stored.state, stored.num_subtasks, stored.plan_id) == (TaskState.IN_PROGRESS, 3, "plan-a")
    assert stored.batch().subtask_configs(2) == {"tableName": "t_OFFLINE", "segment": "s2"}
    assert stored.ended() is None

    records = [
        SubtaskRecord(subtask_name=subtask_name(name, i), state=SubtaskState.COMPLETED, attempts=1)
        for i in range(3)
    ]
    result = BatchResult(
        task_name=name,
        task_state=TaskState.COMPLETED,
        num_subtasks=3,
        num_completed=3,
        num_failed=0,
        status_message="3 of 3 subtasks completed",
        totals={"rows": 30.0},
    )
    end = BatchEnd(task_name=name, finished_at_ms=5, result=result, subtasks=records)
    assert catalog.tasks.record_ended(end)
    stored = catalog.tasks.get(name)
    assert stored is not None
    assert (stored.state, stored.finished_ms, stored.message) == (
        TaskState.COMPLETED,
        5,
        result.status_message,
    )
    assert stored.ended() == end
    assert not catalog.tasks.record_ended(end.model_copy(update={"task_name": f"Task_{TYPE}_1"}))


def test_names_stay_unique_per_task_type(catalog: Catalog) -> None:
    """Two plans of one task type starting a batch in the same millisecond get consecutive ones."""
    first = start(catalog, f"Task_{TYPE}_2000", "plan-a", 0)
    second = start(catalog, f"Task_{TYPE}_2000", "plan-b", 0)
    other_type = start(catalog, "Task_DataExportTask_2000", "plan-c", 0)
    assert (first, second, other_type) == (
        f"Task_{TYPE}_2000",
        f"Task_{TYPE}_2001",
        "Task_DataExportTask_2000",
    )


def test_concurrent_plans_never_share_a_name(catalog: Catalog) -> None:
    names: list[str] = []
    lock = threading.Lock()

    def plan(index: int) -> None:
        for sequence in range(5):
            name = start(catalog, f"Task_{TYPE}_{3000 + sequence}", f"plan-{index}", sequence)
            with lock:
                names.append(name)

    threads = [threading.Thread(target=plan, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(names) == len(set(names)) == 30


def test_a_generation_repeated_after_a_crash_replaces_its_row(catalog: Catalog) -> None:
    start(catalog, f"Task_{TYPE}_4000", "plan-a", 7)
    again = start(catalog, f"Task_{TYPE}_4100", "plan-a", 7)  # the controller died before the batch ran
    assert catalog.tasks.get(f"Task_{TYPE}_4000") is None
    assert catalog.tasks.list_tasks(TYPE, 10) == {again: (TaskState.IN_PROGRESS, "t_OFFLINE")}


def test_in_flight_counts_running_batches_per_table_but_the_askers(catalog: Catalog) -> None:
    start(catalog, f"Task_{TYPE}_5000", "plan-a", 0, n=4, table="a_OFFLINE")
    start(catalog, f"Task_{TYPE}_5001", "plan-b", 0, n=6, table="a_OFFLINE")
    done = start(catalog, f"Task_{TYPE}_5002", "plan-c", 0, n=5, table="b_OFFLINE")
    result = BatchResult(
        task_name=done, task_state=TaskState.FAILED, num_subtasks=5, num_completed=0, num_failed=5
    )
    catalog.tasks.record_ended(BatchEnd(task_name=done, finished_at_ms=1, result=result))
    assert catalog.tasks.in_flight() == {"a_OFFLINE": 10}
    assert catalog.tasks.in_flight(except_plan_id="plan-b") == {"a_OFFLINE": 4}


def test_listing_and_cleanup(catalog: Catalog) -> None:
    for ms in (6002, 6000, 6001):
        start(catalog, f"Task_{TYPE}_{ms}", f"plan-{ms}", 0, table="a_OFFLINE" if ms != 6001 else "b_OFFLINE")
    assert list(catalog.tasks.list_tasks(TYPE, 2)) == [f"Task_{TYPE}_6002", f"Task_{TYPE}_6001"]
    assert catalog.tasks.table_names() == {"a_OFFLINE", "b_OFFLINE"}
    assert catalog.tasks.delete_plans(["plan-6002"]) == 1
    assert catalog.tasks.delete_tables(["a_OFFLINE", "c_OFFLINE"]) == {"a_OFFLINE": 1}
    assert list(catalog.tasks.list_tasks(TYPE, 10)) == [f"Task_{TYPE}_6001"]


def test_plan_snapshots_come_with_their_most_recent_batches(catalog: Catalog) -> None:
    plan = TaskPlan(
        plan_id="plan-s",
        table_name_with_type="t_OFFLINE",
        task_type=TYPE,
        status=PlanStatus.ACTIVE,
        source=PlanSource.ADHOC_CONFIG,
        status_message="batch 2 running",
    )
    names = [start(catalog, f"Task_{TYPE}_{7000 + i}", "plan-s", i) for i in range(4)]
    assert catalog.tasks.plan_snapshots(["plan-s"], 10) == {}  # no batch ended yet
    for i, name in enumerate(names[:3]):
        failed = 1 if i == 1 else 0
        result = BatchResult(
            task_name=name,
            task_state=TaskState.FAILED if failed else TaskState.COMPLETED,
            num_subtasks=3,
            num_completed=3 - failed,
            num_failed=failed,
        )
        snapshot = plan.model_copy(update={"num_batches": i + 1, "inputs_processed": 3 * (i + 1)})
        catalog.tasks.record_ended(
            BatchEnd(task_name=name, finished_at_ms=8000 + i, result=result, plan=snapshot)
        )
    start(catalog, f"Task_{TYPE}_7100", "plan-other", 0)

    snapshots = catalog.tasks.plan_snapshots(["plan-s", "plan-other", "plan-none"], 2)
    assert list(snapshots) == ["plan-s"]
    listed = snapshots["plan-s"]
    assert (listed.num_batches, listed.inputs_processed, listed.status_message) == (3, 9, "batch 2 running")
    assert [(b.batch_sequence, b.task_state, b.num_failed_subtasks) for b in listed.batches] == [
        (2, TaskState.COMPLETED, 0),
        (3, TaskState.IN_PROGRESS, 0),
    ]
    assert listed.batches[0].finished_at_ms == 8002 and listed.batches[1].submitted_task_name == names[3]
    assert [
        b.num_failed_subtasks for b in catalog.tasks.plan_snapshots(["plan-s"], 10)["plan-s"].batches
    ] == [
        0,
        1,
        0,
        0,
    ]
    catalog.tasks.delete_plans(["plan-s"])
    assert catalog.tasks.plan_snapshots(["plan-s"], 10) == {}


def plan_of(plan_id: str, table: str, task_type: str, status: PlanStatus = PlanStatus.ACTIVE) -> TaskPlan:
    return TaskPlan(
        plan_id=plan_id,
        table_name_with_type=table,
        task_type=task_type,
        status=status,
        source=PlanSource.ADHOC_CONFIG,
        status_message=status.value.lower(),
    )


def test_active_plans_are_one_query_over_the_snapshots(catalog: Catalog) -> None:
    tasks = catalog.tasks
    for plan_id, table, task_type in (
        ("p1", "a_OFFLINE", TYPE),
        ("p2", "a_OFFLINE", "NoOpTask"),
        ("p3", "b_OFFLINE", TYPE),
        ("p4", "b_OFFLINE", "NoOpTask"),
    ):
        tasks.record_plan_started(plan_of(plan_id, table, task_type))
    tasks.save_snapshot(plan_of("p2", "a_OFFLINE", "NoOpTask", PlanStatus.ABORTING), 1)
    name = start(catalog, f"Task_{TYPE}_9000", "p3", 0, table="b_OFFLINE")
    end = BatchEnd(
        task_name=name,
        finished_at_ms=9500,
        result=BatchResult(
            task_name=name, task_state=TaskState.COMPLETED, num_subtasks=3, num_completed=3, num_failed=0
        ),
    )
    final = plan_of("p3", "b_OFFLINE", TYPE, PlanStatus.COMPLETED).model_copy(update={"finished_at_ms": 9600})
    tasks.record_plan_end(PlanEnd(plan=final, batch=end))

    assert tasks.active_plan_ids(None, None) == ["p1", "p2", "p4"]
    assert tasks.active_plan_ids("a_OFFLINE", None) == ["p1", "p2"]
    assert tasks.active_plan_ids(None, "NoOpTask") == ["p2", "p4"]
    assert tasks.active_plan_ids("b_OFFLINE", TYPE) == []
    active = tasks.active_plan_snapshots("a_OFFLINE", None, 10)
    assert {p: plan.status for p, plan in active.items()} == {
        "p1": PlanStatus.ACTIVE,
        "p2": PlanStatus.ABORTING,
    }
    assert tasks.snapshot_states() == {
        "p1": (PlanStatus.ACTIVE, 0),
        "p2": (PlanStatus.ABORTING, 1),
        "p4": (PlanStatus.ACTIVE, 0),
    }
    assert tasks.snapshot_states(["p3", "p9"]) == {"p3": (PlanStatus.COMPLETED, 9600)}
    # The plan's end recorded its last batch too, in the same transaction.
    stored = tasks.get(name)
    assert stored is not None and stored.state == TaskState.COMPLETED and stored.finished_ms == 9500

    # An ended plan is never brought back by a reader's older view, but its own end always lands.
    assert not tasks.save_snapshot(
        plan_of("p3", "b_OFFLINE", TYPE, PlanStatus.ABORTING), 9700, unless_ended=True
    )
    assert tasks.snapshot_states(["p3"]) == {"p3": (PlanStatus.COMPLETED, 9600)}
    assert tasks.save_snapshot(plan_of("p9", "b_OFFLINE", TYPE), 9800, unless_ended=True)  # a new one
    cancelled = plan_of("p2", "a_OFFLINE", "NoOpTask", PlanStatus.CANCELLED)
    tasks.record_plan_end(PlanEnd(plan=cancelled.model_copy(update={"finished_at_ms": 9900})))
    assert tasks.active_plan_ids("a_OFFLINE", None) == ["p1"]


def test_the_migration_fills_in_the_status_of_existing_snapshots(tmp_path: Path) -> None:
    """Snapshots saved before revision 0004 get their task type and status from their JSON."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        for plan in (
            plan_of("old-1", "a_OFFLINE", TYPE),
            plan_of("old-2", "a_OFFLINE", TYPE, PlanStatus.FAILED),
        ):
            conn.execute(
                sqlalchemy.text(
                    "INSERT INTO tp_plan_snapshots (plan_id, table_name, updated_ms, plan_json) "
                    "VALUES (:id, :table, 1, :json)"
                ),
                {"id": plan.plan_id, "table": plan.table_name_with_type, "json": plan.model_dump_json()},
            )
    engine.dispose()
    catalog = Catalog(url)
    catalog.migrate()
    assert catalog.tasks.snapshot_states(["old-1", "old-2"]) == {
        "old-1": (PlanStatus.ACTIVE, 1),
        "old-2": (PlanStatus.FAILED, 1),
    }
    assert catalog.tasks.active_plan_ids(None, TYPE) == ["old-1"]
    catalog.close()
