"""Task records of plan batches: Pinot's task metadata, in the catalog.

A plan runs its batches in its own workflow history (no workflow per batch), so a batch's name, state,
subtask configs and, once it ended, its subtask reports are kept here: the task endpoints
(``/tasks/{taskType}/tasks``, ``/tasks/task/{taskName}/...``) read them, and the in-flight subtask limits
count the running ones. The plan's controller writes a row when generation made the batch and updates it
when the batch ends (local activities). While a batch runs, its live subtask states come from the plan
itself (see taskplan/plans/tasks.py).

Each batch's end also saves the plan's snapshot (its counters, status and status message, without its
batches), and so does the plan's end, before its workflow closes: the active-plans listing reads those with
the task records, in two SQL statements, instead of asking Temporal for the running plans and every plan
for its state.

Names are Pinot's ``Task_<taskType>_<epochMillis>``, unique per task type: two plans of one type that
start a batch in the same millisecond get consecutive milliseconds. One row per (plan, batch sequence): a
generation repeated after a controller crash replaces the row it left.

Past 400 lines because the task records, the plan snapshots they are read with, and the tombstones of
deleted tasks and plans (Temporal deletes an execution ~30 s after it is asked to; the task endpoints hide
it at once) are one store: splitting them would split the transactions that write them together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from taskplan.catalog.errors import CatalogError
from taskplan.catalog.schema import plan_snapshots, states, tasks
from taskplan.models.plan import BatchEnd, BatchRecord, PlanEnd, PlanStatus, TaskPlan
from taskplan.models.task import GeneratedBatch, TaskState
from taskplan.names import parse_task_name, task_name

if TYPE_CHECKING:
    from taskplan.catalog.catalog import Catalog

MAX_NAME_STEPS = 1000
ACTIVE_STATUSES = [status.value for status in PlanStatus if status.is_active]
OPEN_STATES = [state.value for state in TaskState if not state.is_final]
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class StoredTask:
    task_name: str
    task_type: str
    table_name: str
    plan_id: str
    batch_sequence: int
    state: TaskState
    num_subtasks: int
    submitted_ms: int
    finished_ms: int | None
    message: str
    batch_json: str
    result_json: str | None

    def batch(self) -> GeneratedBatch:
        return GeneratedBatch.model_validate_json(self.batch_json)

    def ended(self) -> BatchEnd | None:
        return None if self.result_json is None else BatchEnd.model_validate_json(self.result_json)


DELETED_SCOPE = "deletedTask"
TOMBSTONE_MS = 86_400_000


class TaskStore:
    def __init__(self, catalog: Catalog) -> None:
        self.engine = catalog.engine

    # ---------------------------------------------------------------- writes

    def record_started(
        self,
        proposed_name: str,
        *,
        table_name: str,
        plan_id: str,
        batch_sequence: int,
        submitted_ms: int,
        batch: GeneratedBatch,
    ) -> str:
        """Record a running batch; returns its name (the proposed one, or the next free millisecond's)."""
        task_type, ms = parse_task_name(proposed_name)
        batch_json = batch.model_dump_json(exclude_defaults=True)
        for step in range(MAX_NAME_STEPS):
            name = task_name(task_type, ms + step)
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        delete(tasks).where(
                            tasks.c.plan_id == plan_id, tasks.c.batch_sequence == batch_sequence
                        )
                    )
                    conn.execute(
                        tasks.insert().values(
                            task_name=name,
                            task_type=task_type,
                            table_name=table_name,
                            plan_id=plan_id,
                            batch_sequence=batch_sequence,
                            state=TaskState.IN_PROGRESS.value,
                            num_subtasks=len(batch.subtasks),
                            num_failed=0,
                            inputs_in_batch=batch.inputs_in_batch,
                            submitted_ms=submitted_ms,
                            message=f"{len(batch.subtasks)} subtasks",
                            batch_json=batch_json,
                        )
                    )
                return name
            except IntegrityError:
                continue  # another plan's batch has this name: try the next millisecond
        raise CatalogError(f"no free task name after {proposed_name} ({MAX_NAME_STEPS} tried)")

    def record_ended(self, end: BatchEnd) -> bool:
        """Record how a batch ended (its result and subtask reports) and the plan's snapshot after it.
        False if the batch's row is gone (its table was dropped)."""
        with self.engine.begin() as conn:
            changed = self._update_ended(conn, end)
            if changed and end.plan is not None:
                self._save_snapshot(conn, end.plan, end.finished_at_ms)
        return changed

    @staticmethod
    def _update_ended(conn: Connection, end: BatchEnd) -> bool:
        return bool(
            conn.execute(
                update(tasks)
                .where(tasks.c.task_name == end.task_name)
                .values(
                    state=end.result.task_state.value,
                    num_failed=end.result.num_failed,
                    finished_ms=end.finished_at_ms,
                    message=end.result.status_message,
                    result_json=end.model_copy(update={"plan": None}).model_dump_json(exclude_defaults=True),
                )
            ).rowcount
        )

    def record_plan_end(self, end: PlanEnd) -> None:
        """A plan's end, before its workflow closes: its last batch's end (if not recorded yet), any batch
        record of the plan still running (see end_open_batches) and its final snapshot, in one transaction,
        so the plan leaves the active listing as it ends and leaves no batch in flight."""
        plan = end.plan
        finished_ms = plan.finished_at_ms or plan.created_at_ms
        with self.engine.begin() as conn:
            if end.batch is not None:
                self._update_ended(conn, end.batch.model_copy(update={"plan": None}))
            reason = f"its plan ended {plan.status.value}: {plan.status_message}"
            self._end_open_batches(conn, plan.plan_id, finished_ms, reason)
            self._save_snapshot(conn, plan, finished_ms)

    def end_open_batches(self, plan_id: str, finished_ms: int, reason: str) -> int:
        """End the batch records a plan left running when it ended without recording them (terminated or
        deleted in Temporal, or its end missed the catalog): ABORTED, as Helix calls a job ended from
        outside, their subtasks unknown. They no longer count in flight. Returns how many."""
        with self.engine.begin() as conn:
            return self._end_open_batches(conn, plan_id, finished_ms, reason)

    @staticmethod
    def _end_open_batches(conn: Connection, plan_id: str, finished_ms: int, reason: str) -> int:
        return int(
            conn.execute(
                update(tasks)
                .where(tasks.c.plan_id == plan_id, tasks.c.state.in_(OPEN_STATES))
                .values(state=TaskState.ABORTED.value, finished_ms=finished_ms, message=_cut(reason))
            ).rowcount
        )

    def record_plan_started(self, plan: TaskPlan) -> None:
        """A new plan's first snapshot (unless its first batch already saved a newer one)."""
        with self.engine.begin() as conn:
            present = conn.execute(
                select(plan_snapshots.c.plan_id).where(plan_snapshots.c.plan_id == plan.plan_id)
            ).first()
            if present is None:
                self._save_snapshot(conn, plan, plan.created_at_ms)

    def save_snapshot(self, plan: TaskPlan, updated_ms: int, *, unless_ended: bool = False) -> bool:
        """Save a plan's snapshot; with ``unless_ended``, not over one that says the plan ended (a reader's
        view must never bring an ended plan back). Returns whether it was saved."""
        with self.engine.begin() as conn:
            return self._save_snapshot(conn, plan, updated_ms, unless_ended=unless_ended)

    @staticmethod
    def _save_snapshot(
        conn: Connection, plan: TaskPlan, updated_ms: int, *, unless_ended: bool = False
    ) -> bool:
        values = {
            "table_name": plan.table_name_with_type,
            "task_type": plan.task_type,
            "status": plan.status.value,
            "updated_ms": updated_ms,
            "plan_json": plan.model_copy(update={"batches": []}).model_dump_json(),
        }
        key = key_of_plan = plan_snapshots.c.plan_id == plan.plan_id
        if unless_ended:
            key = key & plan_snapshots.c.status.in_(ACTIVE_STATUSES)
        if conn.execute(update(plan_snapshots).where(key).values(**values)).rowcount:
            return True
        if unless_ended and conn.execute(select(plan_snapshots.c.plan_id).where(key_of_plan)).first():
            return False  # it ended already
        conn.execute(plan_snapshots.insert().values(plan_id=plan.plan_id, **values))
        return True

    def delete_tables(self, table_names: Iterable[str]) -> dict[str, int]:
        """Remove the task records (and plan snapshots) of tables. Returns how many task records per table."""
        removed: dict[str, int] = {}
        with self.engine.begin() as conn:
            for table in table_names:
                conn.execute(delete(plan_snapshots).where(plan_snapshots.c.table_name == table))
                count = conn.execute(delete(tasks).where(tasks.c.table_name == table)).rowcount
                if count:
                    removed[table] = count
        return removed

    def delete_plans(self, plan_ids: Iterable[str]) -> int:
        removed = 0
        with self.engine.begin() as conn:
            for plan_id in plan_ids:
                conn.execute(delete(plan_snapshots).where(plan_snapshots.c.plan_id == plan_id))
                removed += conn.execute(delete(tasks).where(tasks.c.plan_id == plan_id)).rowcount
        return removed

    # ---------------------------------------------------------------- reads

    def get(self, name: str) -> StoredTask | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tasks).where(tasks.c.task_name == name)).mappings().first()
        if row is None:
            return None
        return StoredTask(
            task_name=row["task_name"],
            task_type=row["task_type"],
            table_name=row["table_name"],
            plan_id=row["plan_id"],
            batch_sequence=int(row["batch_sequence"]),
            state=TaskState(row["state"]),
            num_subtasks=int(row["num_subtasks"]),
            submitted_ms=int(row["submitted_ms"]),
            finished_ms=None if row["finished_ms"] is None else int(row["finished_ms"]),
            message=row["message"],
            batch_json=row["batch_json"],
            result_json=row["result_json"],
        )

    def list_tasks(self, task_type: str, limit: int) -> dict[str, tuple[TaskState, str]]:
        """Task name -> (state, table) for a task type, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tasks.c.task_name, tasks.c.state, tasks.c.table_name)
                .where(tasks.c.task_type == task_type)
                .order_by(tasks.c.submitted_ms.desc())
                .limit(limit)
            ).all()
        return {name: (TaskState(state), table) for name, state, table in rows}

    def list_task_rows(
        self, task_type: str, limit: int, table_name: str | None = None
    ) -> list[tuple[str, TaskState, str, str, int]]:
        """(task name, state, table, plan id, submitted ms) of a task type's batches, newest first."""
        query = select(
            tasks.c.task_name, tasks.c.state, tasks.c.table_name, tasks.c.plan_id, tasks.c.submitted_ms
        ).where(tasks.c.task_type == task_type)
        if table_name is not None:
            query = query.where(tasks.c.table_name == table_name)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(tasks.c.submitted_ms.desc()).limit(limit)).all()
        return [(name, TaskState(state), table, plan, int(ms)) for name, state, table, plan, ms in rows]

    def plans_of_type(self, task_type: str) -> dict[str, PlanStatus]:
        """Every plan of a task type the catalog knows (its snapshot, or a batch record), with its status
        (ACTIVE when only a batch record knows it)."""
        with self.engine.connect() as conn:
            snapshots = conn.execute(
                select(plan_snapshots.c.plan_id, plan_snapshots.c.status).where(
                    plan_snapshots.c.task_type == task_type
                )
            ).all()
            batches = conn.execute(
                select(tasks.c.plan_id).where(tasks.c.task_type == task_type).distinct()
            ).all()
        found = {plan_id: PlanStatus.ACTIVE for (plan_id,) in batches}
        found.update({plan_id: PlanStatus(status) for plan_id, status in snapshots})
        return found

    def latest_plan_snapshot(self, table_name: str, task_type: str) -> TaskPlan | None:
        """The snapshot of the table's most recently saved plan of a task type (no batch records)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(plan_snapshots.c.plan_json)
                .where(plan_snapshots.c.table_name == table_name, plan_snapshots.c.task_type == task_type)
                .order_by(plan_snapshots.c.updated_ms.desc())
                .limit(1)
            ).first()
        return None if row is None else TaskPlan.model_validate_json(row[0])

    def plans_of_table(self, table_name: str, task_type: str) -> list[str]:
        """The ids of a table's ended plans of a task type (their snapshots)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(plan_snapshots.c.plan_id, plan_snapshots.c.status).where(
                    plan_snapshots.c.table_name == table_name, plan_snapshots.c.task_type == task_type
                )
            ).all()
        return sorted(plan_id for plan_id, status in rows if not PlanStatus(status).is_active)

    def mark_deleted(self, names: Iterable[str], deleted_ms: int) -> None:
        """Tombstones of deleted legacy tasks: Temporal deletes an execution about 30 s after it is asked
        to, and the task endpoints must not show it meanwhile."""
        with self.engine.begin() as conn:
            for name in names:
                conn.execute(delete(states).where(states.c.scope == DELETED_SCOPE, states.c.name == name))
                conn.execute(states.insert().values(scope=DELETED_SCOPE, name=name, value=str(deleted_ms)))
            # Temporal has long deleted what a day-old tombstone hides (the values are 13-digit ms).
            conn.execute(
                delete(states).where(
                    states.c.scope == DELETED_SCOPE, states.c.value < str(deleted_ms - TOMBSTONE_MS)
                )
            )

    def undelete(self, name: str) -> None:
        """A task name used again (an ad hoc taskName): its old tombstone must not hide the new task."""
        with self.engine.begin() as conn:
            conn.execute(delete(states).where(states.c.scope == DELETED_SCOPE, states.c.name == name))

    def deleted(self, names: Iterable[str] | None = None) -> set[str]:
        """Which of these task names (None: any) were deleted."""
        query = select(states.c.name).where(states.c.scope == DELETED_SCOPE)
        if names is not None:
            query = query.where(states.c.name.in_(list(names)))
        with self.engine.connect() as conn:
            return set(conn.scalars(query).all())

    def first_task_of_plan(self, plan_id: str) -> tuple[str, str] | None:
        """(task name, table) of a plan's first recorded batch, if it has one yet."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(tasks.c.task_name, tasks.c.table_name)
                .where(tasks.c.plan_id == plan_id)
                .order_by(tasks.c.batch_sequence)
                .limit(1)
            ).first()
        return None if row is None else (row[0], row[1])

    def in_flight(self, except_plan_id: str | None = None) -> dict[str, int]:
        """Subtasks of running batches per table, leaving out one plan's (the one asking)."""
        query = (
            select(tasks.c.table_name, func.sum(tasks.c.num_subtasks))
            .where(tasks.c.state == TaskState.IN_PROGRESS.value)
            .group_by(tasks.c.table_name)
        )
        if except_plan_id is not None:
            query = query.where(tasks.c.plan_id != except_plan_id)
        per_table: dict[str, int] = defaultdict(int)
        with self.engine.connect() as conn:
            for table, count in conn.execute(query).all():
                per_table[table] += int(count or 0)
        return dict(per_table)

    def plans_with_open_batches(self, submitted_before_ms: int) -> list[str]:
        """Plans with a batch record still running that was submitted before then."""
        with self.engine.connect() as conn:
            query = (
                select(tasks.c.plan_id)
                .where(tasks.c.state.in_(OPEN_STATES), tasks.c.submitted_ms < submitted_before_ms)
                .distinct()
            )
            return sorted(conn.scalars(query).all())

    def table_names(self) -> set[str]:
        with self.engine.connect() as conn:
            names = set(conn.scalars(select(tasks.c.table_name).distinct()).all())
            return names | set(conn.scalars(select(plan_snapshots.c.table_name).distinct()).all())

    def plan_snapshots(self, plan_ids: Sequence[str], batch_limit: int) -> dict[str, TaskPlan]:
        """The latest snapshots of these plans, each with its most recent ``batch_limit`` batch records
        (from the task records, so the running batch is there too). Plans without a snapshot are left out."""
        if not plan_ids:
            return {}
        with self.engine.connect() as conn:
            return self._with_batches(
                conn, self._snapshots(conn, plan_snapshots.c.plan_id.in_(list(plan_ids))), batch_limit
            )

    def active_plan_snapshots(
        self, table_name: str | None, task_type: str | None, batch_limit: int
    ) -> dict[str, TaskPlan]:
        """The snapshots of the plans that are active (ACTIVE or ABORTING), as plan_snapshots."""
        with self.engine.connect() as conn:
            plans = self._snapshots(conn, self._active(table_name, task_type))
            return self._with_batches(conn, plans, batch_limit)

    def active_plan_ids(self, table_name: str | None, task_type: str | None) -> list[str]:
        with self.engine.connect() as conn:
            query = select(plan_snapshots.c.plan_id).where(self._active(table_name, task_type))
            return sorted(conn.scalars(query).all())

    def snapshot_states(self, plan_ids: Sequence[str] | None = None) -> dict[str, tuple[PlanStatus, int]]:
        """Plan id -> (status, when saved) of these plans' snapshots (None: of the active plans)."""
        where = self._active(None, None) if plan_ids is None else plan_snapshots.c.plan_id.in_(list(plan_ids))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(plan_snapshots.c.plan_id, plan_snapshots.c.status, plan_snapshots.c.updated_ms).where(
                    where
                )
            ).all()
        return {plan_id: (PlanStatus(status), int(updated)) for plan_id, status, updated in rows}

    @staticmethod
    def _active(table_name: str | None, task_type: str | None) -> ColumnElement[bool]:
        where: ColumnElement[bool] = plan_snapshots.c.status.in_(ACTIVE_STATUSES)
        if table_name:
            where = where & (plan_snapshots.c.table_name == table_name)
        if task_type:
            where = where & (plan_snapshots.c.task_type == task_type)
        return where

    @staticmethod
    def _snapshots(conn: Connection, where: ColumnElement[bool]) -> dict[str, TaskPlan]:
        rows = conn.execute(select(plan_snapshots.c.plan_id, plan_snapshots.c.plan_json).where(where)).all()
        return {plan_id: TaskPlan.model_validate_json(plan_json) for plan_id, plan_json in rows}

    @staticmethod
    def _with_batches(conn: Connection, plans: dict[str, TaskPlan], batch_limit: int) -> dict[str, TaskPlan]:
        """The plans, each with its most recent ``batch_limit`` batch records."""
        if not plans or batch_limit <= 0:
            return plans
        numbered = select(
            tasks.c.plan_id,
            tasks.c.batch_sequence,
            tasks.c.submitted_ms,
            tasks.c.task_name,
            tasks.c.state,
            tasks.c.num_subtasks,
            tasks.c.num_failed,
            tasks.c.inputs_in_batch,
            tasks.c.finished_ms,
            func.row_number()
            .over(partition_by=tasks.c.plan_id, order_by=tasks.c.batch_sequence.desc())
            .label("recent"),
        ).where(tasks.c.plan_id.in_(list(plans)))
        recent = numbered.subquery()
        rows = conn.execute(
            select(recent)
            .where(recent.c.recent <= batch_limit)
            .order_by(recent.c.plan_id, recent.c.batch_sequence)
        ).all()
        for row in rows:
            plans[row.plan_id].batches.append(
                BatchRecord(
                    batch_sequence=int(row.batch_sequence),
                    submitted_at_ms=int(row.submitted_ms),
                    submitted_task_name=row.task_name,
                    task_state=TaskState(row.state),
                    num_subtasks=int(row.num_subtasks),
                    num_failed_subtasks=int(row.num_failed),
                    inputs_in_batch=int(row.inputs_in_batch),
                    finished_at_ms=None if row.finished_ms is None else int(row.finished_ms),
                )
            )
        return plans


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
