"""Quartz cron -> Temporal calendar specs: same days, same times, as Quartz; refusals name the problem."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import pytest
from temporalio.client import ScheduleCalendarSpec, ScheduleRange

from taskplan.quartz import CronTranslationError, translate
from tests.support.quartz_reference import fires_on, next_fire_times, times_of_day

# Quartz's documented examples, and every special it has.
EXPRESSIONS = [
    "0 0 2 * * ?",
    "0 15 10 ? * *",
    "0 0/5 14 * * ?",
    "0 0/5 14,18 * * ?",
    "0 0-5 14 * * ?",
    "0 10,44 14 ? 3 WED",
    "0 15 10 ? * MON-FRI",
    "0 15 10 15 * ?",
    "0 15 10 L * ?",
    "0 15 10 L-2 * ?",
    "0 15 10 ? * 6L",
    "0 15 10 ? * 6#3",
    "0 0 12 1/5 * ?",
    "0 11 11 11 11 ?",
    "0 0 12 LW * ?",
    "0 0 12 15W * ?",
    "0 0 12 1W * ?",
    "0 0 12 28W * ?",
    "0 0 12 ? * FRI-MON",
    "0 0 22-2 * * ?",
    "*/10 * * * * ?",
    "0 0 12 L 2 ?",
    "0 0 12 29 2 ? 2028-2040",
    "0 30 9 ? jan,JUL 2#1",
    "0 0 0 ? * L",
    "0 0 0 31 * ?",
    "0 0 12 ? * 5#5",
    "0 0 12 ? * 1L",
    "0 0 6 ? * 2/2",
    "15,45 */20 9-17 ? * MON-FRI 2027",
    "0 0 0 L-30 * ?",
]


def _in(value: int, ranges: Sequence[ScheduleRange]) -> bool:
    return any(
        r.start <= value <= max(r.end, r.start) and (value - r.start) % (r.step or 1) == 0 for r in ranges
    )


def _spec_fires_on(spec: ScheduleCalendarSpec, day: date) -> bool:
    return (
        _in(day.day, spec.day_of_month)
        and _in(day.month, spec.month)
        and (not spec.year or _in(day.year, spec.year))
        and _in(day.isoweekday() % 7, spec.day_of_week)
    )


def _spec_times(spec: ScheduleCalendarSpec) -> list[time]:
    hours = [h for h in range(24) if _in(h, spec.hour)]
    minutes = [m for m in range(60) if _in(m, spec.minute)]
    seconds = [s for s in range(60) if _in(s, spec.second)]
    return [time(h, m, s) for h in hours for m in minutes for s in seconds]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_specs_fire_on_the_days_and_times_quartz_does(expression: str) -> None:
    specs = translate(expression)
    for spec in specs:
        assert _spec_times(spec) == times_of_day(expression)
    # Every day of 2026-2031 (a leap year, every weekday on every date) and around the horizon's century.
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(6 * 366)]
    days += [date(2099, 12, 1) + timedelta(days=i) for i in range(31)]
    wrong = [d for d in days if any(_spec_fires_on(s, d) for s in specs) != fires_on(expression, d)]
    assert not wrong, f"{expression}: differs from Quartz on {wrong[:5]}"


# Next fire times after Monday 2026-11-23 00:00 UTC, read off a calendar.
KNOWN_NEXT = {
    "0 15 10 ? * 6L": ["2026-11-27T10:15", "2026-12-25T10:15", "2027-01-29T10:15"],
    "0 0 12 ? * 6#3": ["2026-12-18T12:00", "2027-01-15T12:00", "2027-02-19T12:00"],
    "0 0 12 15W * ?": ["2026-12-15T12:00", "2027-01-15T12:00", "2027-02-15T12:00"],
    "0 0 12 LW * ?": ["2026-11-30T12:00", "2026-12-31T12:00", "2027-01-29T12:00"],
    "0 0 12 1W * ?": ["2026-12-01T12:00", "2027-01-01T12:00", "2027-02-01T12:00"],
    "0 0 12 L 2 ?": ["2027-02-28T12:00", "2028-02-29T12:00", "2029-02-28T12:00"],
    "0 0 2 * * ?": ["2026-11-23T02:00", "2026-11-24T02:00", "2026-11-25T02:00"],
    "0 0 0 ? * L": ["2026-11-28T00:00", "2026-12-05T00:00", "2026-12-12T00:00"],
}


@pytest.mark.parametrize(("expression", "expected"), sorted(KNOWN_NEXT.items()))
def test_reference_agrees_with_the_calendar(expression: str, expected: list[str]) -> None:
    after = datetime(2026, 11, 23, tzinfo=UTC)
    times = next_fire_times(expression, after, len(expected), UTC)
    assert [t.strftime("%Y-%m-%dT%H:%M") for t in times] == expected


def test_a_nearest_weekday_skips_to_monday_when_the_first_is_a_saturday() -> None:
    # 2027-05-01 is a Saturday: 1W fires on Monday the 3rd, not in April.
    times = next_fire_times("0 0 12 1W * ?", datetime(2027, 4, 15, tzinfo=UTC), 1, UTC)
    assert times[0].date() == date(2027, 5, 3)
    specs = translate("0 0 12 1W * ?")
    assert any(_spec_fires_on(s, date(2027, 5, 3)) for s in specs)
    assert not any(_spec_fires_on(s, date(2027, 4, 30)) for s in specs)


def test_croniter_agrees_on_plain_expressions() -> None:
    from croniter import croniter

    after = datetime(2026, 11, 23, 7, 3, tzinfo=UTC)
    for expression in ["0 0 2 * * ?", "0 0/5 14,18 * * ?", "*/10 * * * * ?", "0 0 22-23 1/5 * ?"]:
        it = croniter(expression.replace("?", "*"), after, second_at_beginning=True)
        expected = [it.get_next(datetime) for _ in range(5)]
        assert next_fire_times(expression, after, 5, UTC) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 2 * * *", "exactly one of day-of-month and day-of-week must be '?'"),
        ("0 0 2 ? * ?", "exactly one of day-of-month and day-of-week must be '?'"),
        ("0 0 2 * *", "has 5 fields"),
        ("0 0 2 * * ? 2030 x", "has 8 fields"),
        ("0 0 2 L,15 * ?", "L and W take one day"),
        ("0 0 2 31W * ?", "W is translated for days 1-28 only"),
        ("0 0 2 ? * 6#6", "the n in #n must be 1-5"),
        ("0 0 2 ? * MON#2,FRI#2", "L and # take one weekday"),
        ("61 0 0 * * ?", "seconds: 61 is outside 0-59"),
        ("0 0 0 * 13 ?", "month: 13 is outside 1-12"),
        ("0 0 0 * FOO ?", "month: 'FOO' is not a number or name"),
        ("0 0 0 * * ? 1969", "year: 1969 is outside 1970-2099"),
        ("0 0 0 * * ? 1971-1999", "every year named is in the past"),
        ("0 0/0 * * * ?", "minutes: bad increment '0'"),
        ("0 0 L * * ?", "hours: 'L': ?, L, W and # belong to the day fields"),
        ("0 0 0 30 2 ?", "never fires"),
        ("0 0 0 1,,2 * ?", "empty list item"),
    ],
)
def test_refuses_what_it_cannot_express_exactly(expression: str, message: str) -> None:
    with pytest.raises(CronTranslationError) as caught:
        translate(expression)
    assert message in str(caught.value)
