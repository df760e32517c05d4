"""A plain, slow reading of Quartz cron semantics, written independently of taskplan.quartz.

It checks every candidate day against the expression's day rules the way Quartz's documentation states
them, then the times of that day in order. Tests use it as the reference for next fire times.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta, tzinfo

_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


def _num(token: str, names: dict[str, int]) -> int:
    return names.get(token.upper()) or int(token)


def _values(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    names = names or {}
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-")
            first, last = _num(a, names), _num(b, names)
        else:
            first = _num(base, names)
            last = high if step_text else first
        value, count = first, 0
        size = high - low + 1
        while True:  # walk forward from first to last, wrapping past high
            if count % step == 0:
                out.add(value)
            if value == last:
                break
            value = low if value == high else value + 1
            count += 1
            if count > size:
                break
    return out


def _quartz_weekday(day: date) -> int:
    return (day.isoweekday() % 7) + 1  # Sunday 1 .. Saturday 7


def _day_rule(dom: str, dow: str) -> Callable[[date], bool]:
    if dom != "?":
        upper = dom.upper()
        if upper.startswith("L"):
            offset = int(upper[2:]) if upper.startswith("L-") else 0

            def last(day: date) -> bool:
                last_day = calendar.monthrange(day.year, day.month)[1]
                if upper == "LW":
                    target = last_day
                    while date(day.year, day.month, target).isoweekday() > 5:
                        target -= 1
                    return day.day == target
                return day.day == last_day - offset

            return last
        if upper.endswith("W"):
            wanted = int(upper[:-1])

            def nearest(day: date) -> bool:
                last_day = calendar.monthrange(day.year, day.month)[1]
                target = date(day.year, day.month, wanted)
                if target.isoweekday() == 6:
                    target = target + timedelta(days=2) if wanted == 1 else target - timedelta(days=1)
                elif target.isoweekday() == 7:
                    target = target - timedelta(days=2) if wanted == last_day else target + timedelta(days=1)
                return day == target

            return nearest
        days = _values(dom, 1, 31)
        return lambda day: day.day in days
    upper = dow.upper()
    if "#" in upper:
        weekday_text, nth = upper.split("#")
        weekday = _num(weekday_text, _DAYS)
        return lambda day: _quartz_weekday(day) == weekday and (day.day - 1) // 7 + 1 == int(nth)
    if upper.endswith("L") and upper != "L":
        weekday = _num(upper[:-1], _DAYS)
        return lambda day: (
            _quartz_weekday(day) == weekday and day.day + 7 > calendar.monthrange(day.year, day.month)[1]
        )
    weekdays = {7} if upper == "L" else _values(dow, 1, 7, _DAYS)
    return lambda day: _quartz_weekday(day) in weekdays


def fires_on(expression: str, day: date) -> bool:
    """Whether the expression fires at some time of ``day``."""
    fields = expression.split()
    years = _values(fields[6], 1970, 2099) if len(fields) == 7 else None
    return (
        day.month in _values(fields[4], 1, 12, _MONTHS)
        and (years is None or day.year in years)
        and _day_rule(fields[3], fields[5])(day)
    )


def times_of_day(expression: str) -> list[time]:
    fields = expression.split()
    return [
        time(h, m, s)
        for h in sorted(_values(fields[2], 0, 23))
        for m in sorted(_values(fields[1], 0, 59))
        for s in sorted(_values(fields[0], 0, 59))
    ]


def next_fire_times(expression: str, after: datetime, count: int, zone: tzinfo) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after``, as aware datetimes in ``zone``."""
    fields = expression.split()
    seconds = sorted(_values(fields[0], 0, 59))
    minutes = sorted(_values(fields[1], 0, 59))
    hours = sorted(_values(fields[2], 0, 23))
    months = _values(fields[4], 1, 12, _MONTHS)
    years = _values(fields[6], 1970, 2099) if len(fields) == 7 else None
    day_matches = _day_rule(fields[3], fields[5])
    found: list[datetime] = []
    local_after = after.astimezone(zone)
    for day in _days_from(local_after.date()):
        if years is not None and day.year > max(years):
            break
        if day.month not in months or (years is not None and day.year not in years) or not day_matches(day):
            continue
        for hour in hours:
            for minute in minutes:
                for second in seconds:
                    at = datetime.combine(day, time(hour, minute, second), tzinfo=zone)
                    if at > local_after:
                        found.append(at)
                        if len(found) == count:
                            return found
    return found


def _days_from(start: date) -> Iterator[date]:
    day = start
    while day.year < 2300:
        yield day
        day += timedelta(days=1)
