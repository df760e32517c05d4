"""Quartz expressions and time zones a schedule cannot run with: refused, naming the problem, before Temporal
sees them; the first fire day agrees with the independent reference, and a schedule that never fires is
refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from temporalio.client import Client, Schedule, ScheduleActionStartWorkflow, ScheduleState

from taskplan.models.table import TableConfig
from taskplan.quartz import (
    MAX_EXPRESSION_LENGTH,
    MAX_LIST_ITEMS,
    MAX_YEAR,
    CronTranslationError,
    first_fire_day,
    translate,
)
from taskplan.schedules import CronSchedule, schedule_problems, time_zone_problem
from tests.schedules.test_quartz import EXPRESSIONS
from tests.support.quartz_reference import fires_on

LONG_LIST = "0 0 0 ? * " + ",".join(["MON"] * 20_000)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 \u00b2 * * ?", "other than ASCII"),  # superscript two: str.isdigit() says yes
        ("0 0 \u0663 * * ?", "other than ASCII"),  # Arabic-Indic three: int() reads it as 3
        ("0 0 0 L-\u0663 * ?", "other than ASCII"),
        ("0 0 0 ? * 6#\u0663", "other than ASCII"),
        ("0 0/\u0663 0 * * ?", "other than ASCII"),
        ("0 0 0 1\u00a0* * ?", "other than ASCII"),  # a no-break space
        (LONG_LIST, f"at most {MAX_EXPRESSION_LENGTH}"),
        ("0 0 0 ? * " + ",".join(["1"] * (MAX_LIST_ITEMS + 1)), f"at most {MAX_LIST_ITEMS} are allowed"),
    ],
)
def test_refuses_non_ascii_and_oversized_expressions(expression: str, message: str) -> None:
    with pytest.raises(CronTranslationError) as caught:
        translate(expression)
    assert message in str(caught.value)


def longest_expression() -> str:
    """An expression of exactly MAX_EXPRESSION_LENGTH characters with MAX_LIST_ITEMS seconds."""
    seconds = ",".join(str(s) for s in range(MAX_LIST_ITEMS))
    head = f"{seconds} 0 0 ? * MON-FRI"
    padding = MAX_EXPRESSION_LENGTH - len(head) - len(" 2030")
    assert padding >= 0
    return f"{seconds} 0 {'0' * (padding + 1)} ? * MON-FRI 2030"


async def test_the_longest_expression_allowed_is_one_temporal_accepts(temporal_client: Client) -> None:
    expression = longest_expression()
    assert len(expression) == MAX_EXPRESSION_LENGTH
    schedule = CronSchedule("limits_OFFLINE", "TestCountingTask", expression).to_temporal()
    sid = f"quartz-longest-{datetime.now(UTC).timestamp()}"
    handle = await temporal_client.create_schedule(
        sid,
        Schedule(
            action=ScheduleActionStartWorkflow("Nothing", id=sid, task_queue="nobody-polls-this"),
            spec=schedule.spec,
            state=ScheduleState(paused=True),
        ),
    )
    try:
        assert (await handle.describe()).info.next_action_times
    finally:
        await handle.delete()
    with pytest.raises(CronTranslationError, match="characters long"):
        translate(expression + " ")  # one more character is refused before Temporal would be


def reference_first_day(expression: str, start: date) -> date | None:
    day = start
    while day.year <= MAX_YEAR:
        if fires_on(expression, day):
            return day
        day += timedelta(days=1)
    return None


@pytest.mark.parametrize("expression", [*EXPRESSIONS, "0 0 0 29 2 ? 2001", "0 0 12 ? 2 1#5"])
@pytest.mark.parametrize("start", [date(2025, 2, 27), date(2031, 12, 31)])
def test_first_fire_day_agrees_with_the_reference(expression: str, start: date) -> None:
    assert first_fire_day(translate(expression), start) == reference_first_day(expression, start)


def table_with_schedule(expression: str, zone: str | None = None) -> TableConfig:
    configs = {"schedule": expression, **({"scheduleTimeZone": zone} if zone is not None else {})}
    return TableConfig.model_validate(
        {
            "tableName": "t",
            "tableType": "OFFLINE",
            "task": {"taskTypeConfigsMap": {"TestCountingTask": configs}},
        }
    )


@pytest.mark.parametrize(
    "expression", ["0 0 0 29 2 ? 2001", "0 0 0 1 1 ? 2001", "0 0 12 29 2 ? 2029-2031", "0 0 0 ? * 2#5 2026"]
)
def test_a_schedule_that_never_fires_again_is_a_problem(expression: str) -> None:
    if expression.endswith("2026"):  # fires in 2026 (the fifth Monday of a month), not after it
        assert schedule_problems(table_with_schedule(expression), today=date(2026, 1, 1)) == []
        today = date(2027, 1, 1)
    else:
        today = date(2025, 1, 1)
    [problem] = schedule_problems(table_with_schedule(expression), today=today)
    assert problem.startswith("task.taskTypeConfigsMap.TestCountingTask.schedule: ")
    assert "never fires" in problem and str(today) in problem


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("A" * 300, "300 characters"),
        ("Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("../../../etc/passwd", "unknown time zone"),
        ("Europe/", "unknown time zone"),  # a directory of the tz database, not a zone
        ("Europe/Berlin\x00", "unknown time zone"),
    ],
)
def test_time_zones_are_iana_names_of_bounded_length(zone: str, message: str) -> None:
    problem = time_zone_problem(zone)
    assert problem is not None and message in problem
    [named] = schedule_problems(table_with_schedule("0 0 1 * * ?", zone))
    assert named.startswith("task.taskTypeConfigsMap.TestCountingTask.scheduleTimeZone: ")
    assert len(named) < 200


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Argentina/ComodRivadavia", "Etc/GMT+5"])
def test_iana_time_zones_pass(zone: str) -> None:
    assert time_zone_problem(zone) is None
    assert schedule_problems(table_with_schedule("0 0 1 * * ?", zone)) == []
