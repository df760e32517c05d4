"""The sizing benchmark's count of Temporal Cloud actions (bench/costs.py), on a hand-built history."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from bench.costs import Cost, count_actions

E = EventType


def marker(task: int, activity_type: str) -> HistoryEvent:
    built = HistoryEvent(event_type=E.EVENT_TYPE_MARKER_RECORDED)
    built.marker_recorded_event_attributes.workflow_task_completed_event_id = task
    data = Payload(data=json.dumps({"activity_type": activity_type}).encode())
    built.marker_recorded_event_attributes.details["data"].CopyFrom(Payloads(payloads=[data]))
    return built


def history() -> list[HistoryEvent]:
    started = HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    fields = started.workflow_execution_started_event_attributes.search_attributes.indexed_fields
    fields["TemporalScheduledById"].CopyFrom(Payload(data=b'"taskplan-cron__t_OFFLINE__SegmentPurgeTask"'))
    first_try, third_try = (HistoryEvent(event_type=E.EVENT_TYPE_ACTIVITY_TASK_STARTED) for _ in range(2))
    first_try.activity_task_started_event_attributes.attempt = 1
    third_try.activity_task_started_event_attributes.attempt = 3
    return [
        started,
        HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
        HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_TASK_STARTED),
        HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        marker(4, "next_batch"),
        marker(4, "record_plan_snapshot"),
        HistoryEvent(event_type=E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        HistoryEvent(event_type=E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        first_try,
        third_try,
        HistoryEvent(event_type=E.EVENT_TYPE_TIMER_STARTED),
        HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED),
        HistoryEvent(event_type=E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
        HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED),
        HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        marker(15, "next_batch"),
        HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED),
    ]


def test_actions_are_counted_as_temporal_cloud_bills_them() -> None:
    assert count_actions(history()) == {
        "workflow started": 1,
        "schedule firing": 2,  # a Schedule's firing is 3 actions in all with its workflow start
        "activity": 2,
        "activity retry": 2,  # the third attempt is two retries
        "local activities": 2,  # one per workflow task that recorded markers, not one per marker
        "timer": 1,
        "signal": 1,
        "update": 1,
        "search attributes": 1,
    }


def test_a_cost_counts_steps_tasks_and_bytes_of_a_history() -> None:
    cost = Cost()
    cost.add_history(history())
    assert (cost.workflow_runs, cost.steps, cost.workflow_tasks, cost.activity_tasks) == (1, 2, 2, 2)
    assert cost.events == len(history())
    assert cost.history_bytes == sum(e.ByteSize() for e in history())
    assert cost.total_actions == 13
    assert (cost + cost).metric("actions") == 26
