"""The Quartz translator fuzzed (hypothesis) against the independent reference in
tests/support/quartz_reference.py, itself checked against croniter on the expressions croniter reads.

Random valid Quartz expressions: seconds, minutes and hours with values, ranges (wrapping ones too), steps
and lists; day-of-month with the same or ``L``, ``L-n``, ``LW``, ``nW``; months by number or name;
day-of-week by number or name, ranges, steps and lists or ``L``, ``nL``, ``n#k``; ``?`` in exactly one day
field; sometimes a year field. What is compared:

- offline, many examples: the calendar specs fire on the same days as the reference over 120 days from a
  random start date, at the same times of day;
- on Temporal (the dev server computes the schedule's next action times, the way production fires): the
  next 10 fire times after a random instant in 2027-2090, in a random IANA time zone, against the
  reference's next fire times, as UTC instants.

Known difference, not the translator's: at a daylight-saving change Temporal skips a local time that does
not exist (the spring-forward gap) where Quartz, and the reference, fire at it one hour later; and Temporal
fires twice at a local time that occurs twice (the fall-back overlap) where Quartz fires once. The
comparison leaves out exactly those instants, and nothing else.

`make test` runs FUZZ_QUARTZ_EXAMPLES (default 100 offline; a tenth of them, at least 8, on Temporal).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)

from taskplan.quartz import CronTranslationError, translate
from tests.schedules.test_quartz import _in, _spec_fires_on
from tests.support.quartz_reference import fires_on, next_fire_times, times_of_day

EXAMPLES = int(os.environ.get("FUZZ_QUARTZ_EXAMPLES", "100"))
TEMPORAL_EXAMPLES = max(8, EXAMPLES // 10)
NEXT = 10  # Temporal's describe answers the next 10 action times
ZONES = sorted(available_timezones())
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

# --- valid Quartz expressions ------------------------------------------------------------------------


def _field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    def value(v: int) -> st.SearchStrategy[str]:
        return st.sampled_from([str(v), names[v - low]]) if names else st.just(str(v))

    number = st.integers(low, high)
    token = number.flatmap(value)
    step = st.integers(1, high).map(str)
    item = st.one_of(
        token,
        st.tuples(token, token).map("-".join),  # a range; wraps when the end is lower
        st.tuples(st.sampled_from(["*"]) | token, step).map("/".join),
        st.tuples(token, token, step).map(lambda t: f"{t[0]}-{t[1]}/{t[2]}"),
    )
    return st.one_of(st.just("*"), item, st.lists(item, min_size=2, max_size=4).map(",".join))


seconds = st.one_of(st.just("0"), _field(0, 59))
minutes = st.one_of(st.just("0"), _field(0, 59))
hours = _field(0, 23)
months = _field(1, 12, MONTHS)
day_of_month = st.one_of(
    _field(1, 31),
    st.just("L"),
    st.integers(0, 30).map(lambda n: f"L-{n}"),
    st.just("LW"),
    st.integers(1, 28).map(lambda n: f"{n}W"),
)
weekday = st.integers(1, 7).flatmap(lambda d: st.sampled_from([str(d), DAYS[d - 1]]))
day_of_week = st.one_of(
    _field(1, 7, DAYS),
    st.just("L"),
    weekday.map(lambda d: f"{d}L"),
    st.tuples(weekday, st.integers(1, 5)).map(lambda t: f"{t[0]}#{t[1]}"),
)
years = st.one_of(
    st.just(""),
    st.just(" *"),
    st.integers(2027, 2095).flatmap(lambda y: st.sampled_from([f" {y}-{y + 5}", f" {y},{y + 2}", f" {y}/3"])),
)
days = st.one_of(
    st.tuples(day_of_month, st.just("?")),
    st.tuples(st.just("?"), day_of_week),
)
expressions = st.builds(
    lambda s, m, h, d, mo, y: f"{s} {m} {h} {d[0]} {mo} {d[1]}{y}",
    seconds,
    minutes,
    hours,
    days,
    months,
    years,
)


def _values(ranges: Sequence[ScheduleRange], low: int, high: int) -> list[int]:
    return [v for v in range(low, high + 1) if _in(v, ranges)]


def translated(expression: str) -> list[ScheduleCalendarSpec] | None:
    """The specs, or None when the translator refuses an expression that indeed never fires."""
    try:
        return translate(expression)
    except CronTranslationError as exc:
        refusal = str(exc)
    assert "never fires" in refusal or "past the end of every month" in refusal, (expression, refusal)
    start = datetime(2027, 1, 1, tzinfo=UTC)
    assert next_fire_times(expression, start, 1, UTC) == [], (expression, "the reference fires")
    return None


# --- offline: days and times ------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(expressions, st.dates(date(2027, 1, 1), date(2098, 1, 1)))
@example("0 0 0 L-30 2 ?", date(2028, 1, 1))
@example("0 0 12 1W 1/2 ?", date(2027, 1, 1))
@example("0 0 0 ? FEB 5#5", date(2027, 1, 1))
def test_specs_fire_on_the_days_and_times_the_reference_does(expression: str, start: date) -> None:
    specs = translated(expression)
    if specs is None:
        return
    # The times of day: the same hours, minutes and seconds, each combined with all of the others.
    times = times_of_day(expression)
    fields = [
        sorted({t.hour for t in times}),
        sorted({t.minute for t in times}),
        sorted({t.second for t in times}),
    ]
    assert len(times) == len(fields[0]) * len(fields[1]) * len(fields[2])
    for spec in specs:
        assert [_values(spec.hour, 0, 23), _values(spec.minute, 0, 59), _values(spec.second, 0, 59)] == fields
    window = [start + timedelta(days=i) for i in range(120)]
    wrong = [d for d in window if any(_spec_fires_on(s, d) for s in specs) != fires_on(expression, d)]
    assert not wrong, f"{expression}: differs from the reference on {wrong[:5]}"


# --- the reference against croniter -------------------------------------------------------------------


def _cron_field(low: int, high: int) -> st.SearchStrategy[str]:
    """Fields croniter reads as Quartz does: no wrapping ranges, no names, no specials, no one-value range
    (croniter reads seconds ``0-0`` as every second)."""
    pair = st.tuples(st.integers(low, high - 1), st.integers(1, high - low)).map(
        lambda p: (p[0], min(high, p[0] + p[1]))
    )
    item = st.one_of(
        st.integers(low, high).map(str),
        pair.map(lambda p: f"{p[0]}-{p[1]}"),
        st.tuples(pair, st.integers(1, high)).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
        st.integers(1, high).map(lambda s: f"*/{s}"),
    )
    return st.one_of(st.just("*"), item, st.lists(item, min_size=2, max_size=3).map(",".join))


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    _cron_field(0, 59),
    _cron_field(0, 59),
    _cron_field(0, 23),
    _cron_field(1, 28),
    _cron_field(1, 12),
    st.datetimes(datetime(2027, 1, 1), datetime(2090, 1, 1)),
)
def test_the_reference_agrees_with_croniter(
    s: str, m: str, h: str, dom: str, mo: str, start: datetime
) -> None:
    from croniter import croniter

    after = start.replace(microsecond=0, tzinfo=UTC)
    quartz = f"{s} {m} {h} {dom} {mo} ?"
    it = croniter(f"{s} {m} {h} {dom} {mo} *", after, second_at_beginning=True)
    assert next_fire_times(quartz, after, 5, UTC) == [it.get_next(datetime) for _ in range(5)], quartz


# --- on Temporal: next fire times in a time zone -----------------------------------------------------


def _exists(at: datetime, zone: tzinfo) -> bool:
    """Whether the wall time of ``at`` (aware, in ``zone``) exists there (it is not in a DST gap)."""
    wall = at.replace(tzinfo=None)
    return at.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _repeated(at: datetime, zone: tzinfo) -> bool:
    """Whether ``at`` is the second occurrence of its wall time in ``zone`` (a DST overlap)."""
    local = at.astimezone(zone)
    first = local.replace(fold=0).astimezone(UTC)
    return first != at.astimezone(UTC)


async def temporal_next_times(client: Client, expression: str, zone: str, start: datetime) -> list[datetime]:
    sid = f"quartz-fuzz-{uuid.uuid4().hex}"
    handle = await client.create_schedule(
        sid,
        Schedule(
            action=ScheduleActionStartWorkflow("Nothing", id=sid, task_queue="nobody-polls-this"),
            spec=ScheduleSpec(calendars=translate(expression), time_zone_name=zone, start_at=start),
            state=ScheduleState(paused=True),
        ),
    )
    try:
        return list((await handle.describe()).info.next_action_times)
    finally:
        await handle.delete()


def compare(expression: str, zone_name: str, start: datetime, temporal: list[datetime]) -> None:
    zone = ZoneInfo(zone_name)
    reference = next_fire_times(expression, start - timedelta(seconds=1), 2 * NEXT + 2, zone)
    expected = [t.astimezone(UTC) for t in reference if _exists(t, zone)]
    got = [t for t in temporal if not _repeated(t, zone)]
    # Temporal answers its next 10 times, fewer when the schedule ends (its years are over)
    horizon = got[-1] if len(temporal) == NEXT else datetime(2101, 1, 1, tzinfo=UTC)
    expected = [t for t in expected if t <= horizon]
    assert got == expected, (expression, zone_name, start.isoformat(), got[:4], expected[:4])


async def test_temporal_fires_the_translation_when_the_reference_does(temporal_client: Client) -> None:
    loop = asyncio.get_running_loop()
    ran: list[str] = []

    @settings(
        max_examples=TEMPORAL_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        expressions,
        st.sampled_from(ZONES),
        st.datetimes(datetime(2027, 1, 1), datetime(2090, 1, 1)),
    )
    @example("0 30 2 * * ?", "America/New_York", datetime(2027, 3, 13))  # a spring-forward gap
    @example("0 30 1 * * ?", "America/New_York", datetime(2027, 11, 6))  # a fall-back overlap
    @example("0 0 0 * * ?", "Australia/Lord_Howe", datetime(2030, 4, 5))  # a half-hour change
    @example("0 0 * * * ? 2027-2032", "Africa/Abidjan", datetime(2033, 1, 1))  # no firing left
    def run(expression: str, zone: str, start: datetime) -> None:
        if translated(expression) is None:
            return
        at = start.replace(microsecond=0, tzinfo=UTC)
        future = asyncio.run_coroutine_threadsafe(
            temporal_next_times(temporal_client, expression, zone, at), loop
        )
        compare(expression, zone, at, future.result(timeout=60))
        ran.append(expression)

    await asyncio.to_thread(run)
    print("FUZZ quartz-on-temporal", json.dumps({"examples": len(ran)}))


def test_only_the_dst_gap_and_the_repeated_hour_are_left_out() -> None:
    new_york = ZoneInfo("America/New_York")
    # 02:30 does not exist on 2027-03-14 (the reference fires at 03:30 EDT then; Temporal skips it)
    assert not _exists(datetime(2027, 3, 14, 2, 30, tzinfo=new_york), new_york)
    assert _exists(datetime(2027, 3, 14, 3, 30, tzinfo=new_york), new_york)
    assert _exists(datetime(2027, 3, 13, 2, 30, tzinfo=new_york), new_york)
    # 01:30 occurs twice on 2027-11-07: 05:30 UTC (EDT), then 06:30 UTC (EST), which Quartz does not fire
    assert not _repeated(datetime(2027, 11, 7, 5, 30, tzinfo=UTC), new_york)
    assert _repeated(datetime(2027, 11, 7, 6, 30, tzinfo=UTC), new_york)
    assert not _repeated(datetime(2027, 11, 8, 6, 30, tzinfo=UTC), new_york)
