"""The cron trigger's activity: one trigger cycle for the table and task type a Schedule fired for."""

from __future__ import annotations

import asyncio

from temporalio import activity

from taskplan.catalog import Catalog
from taskplan.cycle import run_trigger_cycle
from taskplan.gate import QueueState, queue_state
from taskplan.models.plan import CycleResult
from taskplan.models.task import CRON_TRIGGER
from taskplan.plans import OneShotRunner, PlanStarter
from taskplan.registry import TaskTypeRegistry
from taskplan.schedules import SCHEDULE_KEY
from taskplan.triggers import orchestration_switch
from taskplan.workflows.activity_defs import TriggerActivityDefs
from taskplan.workflows.models import CronTriggerInput


class TriggerActivities(TriggerActivityDefs):
    def __init__(
        self,
        starter: PlanStarter,
        one_shot: OneShotRunner,
        registry: TaskTypeRegistry,
        catalog: Catalog,
        *,
        enable_task_orchestration: bool,
    ) -> None:
        self.starter = starter
        self.one_shot = one_shot
        self.registry = registry
        self.catalog = catalog
        self.enable_task_orchestration = enable_task_orchestration  # the property; a cluster config wins

    @activity.defn(name="run_scheduled_trigger")
    async def run_scheduled_trigger(self, trigger: CronTriggerInput) -> CycleResult:
        name, table_name = trigger.task_type, trigger.table_name_with_type
        table = await asyncio.to_thread(self.catalog.get_table_config, table_name)
        configs = table.task_type_configs(name) if table is not None else None
        if table is None or configs is None or not configs.get(SCHEDULE_KEY):
            # The config changed between the firing and now; the schedule is being removed with it.
            return CycleResult(task_type=name, note=f"{table_name} no longer schedules {name}: nothing done")
        if name not in self.registry:
            return CycleResult(task_type=name, errors={table_name: f"unknown task type {name}"})
        cluster = await asyncio.to_thread(self.catalog.cluster_configs)
        switch_on = orchestration_switch(cluster, self.enable_task_orchestration)
        stopped = await asyncio.to_thread(queue_state, self.catalog, name) is QueueState.STOPPED
        result = await run_trigger_cycle(
            self.starter,
            self.one_shot,
            self.registry.get(name),
            [table],
            switch_on=switch_on,
            queue_stopped=stopped,
            triggered_by=CRON_TRIGGER,
        )
        activity.logger.info(
            "cron trigger %s %s: plans %s, skipped %s, legacy %s, errors %s",
            table_name,
            name,
            result.task_plans,
            result.skipped,
            result.legacy_tasks,
            result.errors,
        )
        return result
