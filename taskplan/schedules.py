"""Cron triggers from table configs, kept as Temporal Schedules.

A table config's ``task.taskTypeConfigsMap.<TaskType>.schedule`` (Quartz cron, optional
``scheduleTimeZone``, UTC by default) becomes one Schedule, id ``taskplan-cron__<table>__<TaskType>``,
whose action starts a ``CronTrigger`` workflow on the controller queue. Schedules follow the table configs:
created, updated and deleted with them, and reconciled against the catalog once per cluster by the
ClusterJobs workflow (taskplan/workflows/cluster_jobs.py) whenever a controller or the API starts.

A schedule is refused (400 naming its field) when its expression cannot be translated exactly (see
taskplan/quartz.py), when it never fires from today to the end of Temporal's calendar (``0 0 0 29 2 ? 2001``),
or when its time zone is not an IANA name this host knows (at most 64 characters).

Policy, explicit: a firing that finds the previous firing's trigger still running is skipped (overlap
SKIP, so firings never pile up); after downtime, only a firing missed by less than ``CATCHUP_WINDOW`` is
still run, once; older ones are dropped, never replayed in a burst. A paused schedule (``temporal schedule
toggle --pause``) stays paused when its table config changes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import available_timezones

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from taskplan.models.table import TableConfig
from taskplan.names import CLUSTER_JOBS_WORKFLOW_ID, CONTROLLER_TASK_QUEUE, SearchAttributes
from taskplan.quartz import MAX_YEAR, CronTranslationError, first_fire_day, translate
from taskplan.workflows.cluster_jobs import RECONCILE_SIGNAL
from taskplan.workflows.models import CronTriggerInput

log = logging.getLogger(__name__)

SCHEDULE_KEY = "schedule"
SCHEDULE_TIME_ZONE_KEY = "scheduleTimeZone"
DEFAULT_TIME_ZONE = "UTC"
SCHEDULE_ID_PREFIX = "taskplan-cron__"
TRIGGER_WORKFLOW = "CronTrigger"
CATCHUP_WINDOW = timedelta(minutes=1)
MAX_TIME_ZONE_LENGTH = 64  # the longest IANA name has 32 characters


def schedule_id(table_name_with_type: str, task_type: str) -> str:
    return f"{SCHEDULE_ID_PREFIX}{table_name_with_type}__{task_type}"


def trigger_workflow_id(table_name_with_type: str, task_type: str) -> str:
    """Temporal appends each firing's time to this id."""
    return f"taskplan-cron-trigger__{table_name_with_type}__{task_type}"


@dataclass(frozen=True)
class CronSchedule:
    table: str
    task_type: str
    expression: str
    time_zone: str = DEFAULT_TIME_ZONE

    @property
    def id(self) -> str:
        return schedule_id(self.table, self.task_type)

    @property
    def config_field(self) -> str:
        return f"task.taskTypeConfigsMap.{self.task_type}.{SCHEDULE_KEY}"

    def to_temporal(self) -> Schedule:
        return Schedule(
            action=ScheduleActionStartWorkflow(
                TRIGGER_WORKFLOW,
                CronTriggerInput(table_name_with_type=self.table, task_type=self.task_type),
                id=trigger_workflow_id(self.table, self.task_type),
                task_queue=CONTROLLER_TASK_QUEUE,
                execution_timeout=timedelta(hours=1),
                typed_search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SearchAttributes.TABLE, self.table),
                        SearchAttributePair(SearchAttributes.TASK_TYPE, self.task_type),
                    ]
                ),
            ),
            spec=ScheduleSpec(calendars=translate(self.expression), time_zone_name=self.time_zone),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
            state=ScheduleState(
                note=f"{self.config_field} = {self.expression!r} ({self.time_zone}) "
                f"from table config {self.table}"
            ),
        )


def cron_schedules(config: TableConfig) -> list[CronSchedule]:
    """The schedules a table config asks for (its task types with a ``schedule`` key)."""
    found = []
    for task_type, configs in sorted((config.task.taskTypeConfigsMap if config.task else {}).items()):
        expression = (configs.get(SCHEDULE_KEY) or "").strip()
        if expression:
            time_zone = (configs.get(SCHEDULE_TIME_ZONE_KEY) or "").strip() or DEFAULT_TIME_ZONE
            found.append(CronSchedule(config.tableName, task_type, expression, time_zone))
    return found


@functools.cache
def _known_time_zones() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database's directory: once per process


def time_zone_problem(name: str) -> str | None:
    """Why ``name`` is not a time zone a schedule can use; None if it is."""
    if len(name) > MAX_TIME_ZONE_LENGTH:
        return f"a time zone name of {len(name)} characters; IANA names have at most {MAX_TIME_ZONE_LENGTH}"
    if name not in _known_time_zones():
        return f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin"
    return None


def schedule_problems(config: TableConfig, today: date | None = None) -> list[str]:
    """Why the table config's schedules cannot run exactly as written, naming each field; [] if they can.
    A schedule must fire on some day from ``today`` (default: yesterday in UTC, so that no time zone is
    ahead of it)."""
    start = today or datetime.now(UTC).date() - timedelta(days=1)
    problems = []
    for schedule in cron_schedules(config):
        try:
            specs = translate(schedule.expression)
        except CronTranslationError as exc:
            problems.append(f"{schedule.config_field}: {exc}")
        else:
            if first_fire_day(specs, start) is None:
                problems.append(
                    f"{schedule.config_field}: {schedule.expression!r} never fires: no day from {start} "
                    f"to the end of {MAX_YEAR} matches it"
                )
        zone_problem = time_zone_problem(schedule.time_zone)
        if zone_problem:
            problems.append(
                f"task.taskTypeConfigsMap.{schedule.task_type}.{SCHEDULE_TIME_ZONE_KEY}: {zone_problem}"
            )
    return problems


@dataclass
class ReconcileReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScheduleFacts:
    """What Temporal says of one cron Schedule (Pinot's scheduler job details)."""

    schedule_id: str
    table: str
    task_type: str
    time_zone: str
    next_fire_ms: int | None
    previous_fire_ms: int | None
    num_actions: int
    paused: bool
    note: str


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


class ScheduleManager:
    """Creates, updates and deletes a table's cron Schedules to match its config."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def upsert(self, schedule: CronSchedule) -> str:
        """Create the schedule, or update it in place (keeping an operator's pause). 'created'/'updated'."""
        definition = schedule.to_temporal()
        try:
            await self.client.create_schedule(schedule.id, definition)
            return "created"
        except ScheduleAlreadyRunningError:
            pass

        def keep_pause(current: ScheduleUpdateInput) -> ScheduleUpdate:
            old_state = current.description.schedule.state
            definition.state.paused = old_state.paused
            if old_state.paused:
                definition.state.note = old_state.note
            return ScheduleUpdate(schedule=definition)

        await self.client.get_schedule_handle(schedule.id).update(keep_pause)
        return "updated"

    async def delete(self, schedule_id_: str) -> bool:
        try:
            await self.client.get_schedule_handle(schedule_id_).delete()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def apply(
        self, config: TableConfig, task_types: Iterable[str] = (), report: ReconcileReport | None = None
    ) -> ReconcileReport:
        """Make the table's schedules match ``config``; those of ``task_types`` it no longer asks for go."""
        report = report or ReconcileReport()
        wanted = cron_schedules(config)
        for schedule in wanted:
            outcome = await self.upsert(schedule)
            (report.created if outcome == "created" else report.updated).append(schedule.id)
        keep = {s.id for s in wanted}
        for task_type in sorted(set(task_types)):
            sid = schedule_id(config.tableName, task_type)
            if sid not in keep and await self.delete(sid):
                report.deleted.append(sid)
        return report

    async def remove_table(self, table_name_with_type: str, task_types: Iterable[str]) -> list[str]:
        deleted = []
        for task_type in sorted(set(task_types)):
            sid = schedule_id(table_name_with_type, task_type)
            if await self.delete(sid):
                deleted.append(sid)
        return deleted

    async def describe(self, schedule_id_: str) -> ScheduleFacts | None:
        """The schedule's time zone, fire times and counters; None when there is no such schedule."""
        rest = schedule_id_.removeprefix(SCHEDULE_ID_PREFIX)
        table, _, task_type = rest.rpartition("__")
        try:
            desc = await self.client.get_schedule_handle(schedule_id_).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        recent = desc.info.recent_actions
        return ScheduleFacts(
            schedule_id=schedule_id_,
            table=table,
            task_type=task_type,
            time_zone=desc.schedule.spec.time_zone_name or DEFAULT_TIME_ZONE,
            next_fire_ms=_ms(desc.info.next_action_times[0]) if desc.info.next_action_times else None,
            previous_fire_ms=_ms(recent[-1].scheduled_at) if recent else None,
            num_actions=desc.info.num_actions,
            paused=desc.schedule.state.paused,
            note=desc.schedule.state.note or "",
        )

    async def existing_ids(self) -> set[str]:
        ids = set()
        async for listed in await self.client.list_schedules():
            if listed.id.startswith(SCHEDULE_ID_PREFIX):
                ids.add(listed.id)
        return ids

    async def reconcile(self, tables: Iterable[TableConfig]) -> ReconcileReport:
        """Every schedule the catalog asks for exists and matches it; no other taskplan schedule is left."""
        report = ReconcileReport()
        wanted: set[str] = set()
        for config in tables:
            problems = schedule_problems(config)
            if problems:
                log.error("table %s: schedule not created: %s", config.tableName, problems)
                continue
            await self.apply(config, report=report)
            wanted.update(s.id for s in cron_schedules(config))
        for sid in sorted(await self.existing_ids() - wanted):
            if await self.delete(sid):
                report.deleted.append(sid)
        if report.created or report.deleted:
            log.info("cron schedules reconciled: created %s, deleted %s", report.created, report.deleted)
        return report


async def request_reconciliation(client: Client) -> bool:
    """Ask the cluster's jobs workflow to reconcile the cron Schedules with the catalog: it runs once per
    cluster, in whichever controller Temporal hands it, never in the asking process. False when no
    controller has started the workflow yet (the first controller to start asks for one itself)."""
    try:
        await client.get_workflow_handle(CLUSTER_JOBS_WORKFLOW_ID).signal(RECONCILE_SIGNAL)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
