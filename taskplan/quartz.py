"""Quartz cron (Pinot's ``"schedule"``) translated exactly into Temporal calendar specs.

Quartz reads ``sec min hour day-of-month month day-of-week [year]``, with ``?`` in exactly one of the two
day fields, day-of-week 1 = Sunday, names (``JAN``, ``MON-FRI``), lists, ranges (wrapping ones too),
steps (``0/5``, ``*/5``, ``10-40/10``), and the day specials ``L``, ``L-n``, ``LW``, ``nW`` (day of month)
and ``nL``, ``n#k``, ``L`` (day of week).

Temporal matches a calendar spec when every field matches (day-of-month AND day-of-week), and a schedule
fires on the union of its specs. So the specials become a few specs each: the last day of the month is one
spec per month length (February split by leap years), the third Friday is days 15-21 AND Friday, ``15W``
is (15, Mon-Fri) or (14, Fri) or (16, Mon). Whatever cannot be expressed exactly raises
:class:`CronTranslationError`; a schedule never fires at other times than Quartz would.

Temporal keeps the expression in each spec's comment, which it limits to 200 characters, so an expression
is at most ``MAX_EXPRESSION_LENGTH`` long and a list at most ``MAX_LIST_ITEMS`` items; numbers are ASCII
digits only. :func:`first_fire_day` finds whether the specs fire at all (``0 0 0 29 2 ? 2001`` does not).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from temporalio.client import ScheduleCalendarSpec, ScheduleRange

# Temporal's calendar years run 2000-2100: years named explicitly (February's leap-year split, the year
# field) are clipped to them, so a February-dependent schedule has no firing after 2100.
MIN_YEAR = 2000
MAX_YEAR = 2100

# Temporal refuses a calendar spec whose comment is longer than 200 characters; ours is "quartz: " and the
# expression.
COMMENT_PREFIX = "quartz: "
MAX_EXPRESSION_LENGTH = 200 - len(COMMENT_PREFIX)
MAX_LIST_ITEMS = 60  # a field has at most 60 values: a longer list only repeats them

MONTH_NAMES = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
DAY_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}  # Quartz numbering
FRIDAY, MONDAY = 5, 1  # Temporal numbering: 0 = Sunday
WEEKDAYS = frozenset(range(1, 6))
ALL_DAYS_OF_WEEK = frozenset(range(7))


class CronTranslationError(ValueError):
    """The expression is not valid Quartz cron, or cannot be expressed exactly on Temporal."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


SECONDS = _Field("seconds", 0, 59)
MINUTES = _Field("minutes", 0, 59)
HOURS = _Field("hours", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = _Field("day-of-week", 1, 7, DAY_NAMES)
YEAR = _Field("year", 1970, 2099)  # Quartz's range


@dataclass(frozen=True)
class _DaySpec:
    """One alternative for the day: days of month AND days of week (Temporal numbering)."""

    days_of_month: frozenset[int]
    days_of_week: frozenset[int] = ALL_DAYS_OF_WEEK


@dataclass(frozen=True)
class _MonthClass:
    """Months sharing a length, and the years in which they have it (None: every year)."""

    months: frozenset[int]
    length: int
    years: frozenset[int] | None


def _month_classes(months: frozenset[int], years: frozenset[int] | None) -> list[_MonthClass]:
    horizon = years if years is not None else frozenset(range(MIN_YEAR, MAX_YEAR + 1))
    leap = frozenset(y for y in horizon if calendar.isleap(y))
    classes = [
        _MonthClass(months & {1, 3, 5, 7, 8, 10, 12}, 31, years),
        _MonthClass(months & {4, 6, 9, 11}, 30, years),
        _MonthClass(months & {2}, 29, leap),
        _MonthClass(months & {2}, 28, horizon - leap),
    ]
    return [c for c in classes if c.months and (c.years is None or c.years)]


_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() and \\d accept "²" and "٣" too


def _is_number(token: str) -> bool:
    return _NUMBER.fullmatch(token) is not None


def _value(token: str, field: _Field) -> int:
    upper = token.upper()
    if field.names and upper in field.names:
        return field.names[upper]
    if not _is_number(token):
        raise CronTranslationError(f"{field.name}: {token!r} is not a number or name")
    value = int(token)
    if not field.low <= value <= field.high:
        raise CronTranslationError(f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _expand(text: str, field: _Field) -> frozenset[int]:
    """A plain field (no specials): lists of values, ranges (wrapping), steps, ``*``."""
    values: set[int] = set()
    items = text.split(",")
    if len(items) > MAX_LIST_ITEMS:
        raise CronTranslationError(
            f"{field.name}: a list of {len(items)} items; at most {MAX_LIST_ITEMS} are allowed"
        )
    for item in items:
        if not item:
            raise CronTranslationError(f"{field.name}: empty list item in {text!r}")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _is_number(step_text) or not 0 < int(step_text) <= field.high:
                raise CronTranslationError(f"{field.name}: bad increment {step_text!r} in {item!r}")
            step = int(step_text)
        if base == "*":
            start, end = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, field), _value(last, field)
        else:
            start = _value(base, field)
            end = field.high if slash else start  # Quartz: "a/b" runs from a to the field's maximum
        if end < start:  # a wrapping range, e.g. FRI-MON or 22-2
            span = list(range(start, field.high + 1)) + list(range(field.low, end + 1))
        else:
            span = list(range(start, end + 1))
        values.update(span[::step])
    return frozenset(values)


def _to_ranges(values: Iterable[int]) -> tuple[ScheduleRange, ...]:
    """Compress sorted values into ranges: consecutive runs, and arithmetic runs of three or more."""
    ordered = sorted(set(values))
    ranges: list[ScheduleRange] = []
    i = 0
    while i < len(ordered):
        j = i
        if i + 1 < len(ordered):
            step = ordered[i + 1] - ordered[i]
            while j + 1 < len(ordered) and ordered[j + 1] - ordered[j] == step:
                j += 1
            if j - i < 2 and step != 1:
                j = i
        if j == i:
            ranges.append(ScheduleRange(ordered[i]))
        else:
            ranges.append(ScheduleRange(ordered[i], ordered[j], ordered[i + 1] - ordered[i]))
        i = j + 1
    return tuple(ranges)


_LAST_OFFSET = re.compile(r"^L-([0-9]+)$")
_NEAREST_WEEKDAY = re.compile(r"^([0-9]+)W$")
_LAST_OF_WEEK = re.compile(r"^([0-9A-Za-z]+)L$")
_NTH_OF_WEEK = re.compile(r"^([0-9A-Za-z]+)#([0-9]+)$")


def _day_of_month_specs(text: str, length: int) -> list[_DaySpec]:
    """Alternatives for a day-of-month field in a month of ``length`` days."""
    upper = text.upper()
    if upper == "L":
        return [_DaySpec(frozenset({length}))]
    if match := _LAST_OFFSET.match(upper):
        offset = int(match.group(1))
        if offset > 30:
            raise CronTranslationError(f"day-of-month: offset from last day must be <= 30, not {offset}")
        return [_DaySpec(frozenset({length - offset}))] if length - offset >= 1 else []
    if upper == "LW":
        return _nearest_weekday(length, length)
    if match := _NEAREST_WEEKDAY.match(upper):
        day = int(match.group(1))
        if not 1 <= day <= 28:
            raise CronTranslationError(
                f"day-of-month: {text!r}: W is translated for days 1-28 only "
                "(Quartz rolls a missing day into the next month)"
            )
        return _nearest_weekday(day, length)
    if "L" in upper or "W" in upper:
        raise CronTranslationError(
            f"day-of-month: {text!r}: L and W take one day, not a list or range (Quartz: L, L-n, LW, nW)"
        )
    return [_DaySpec(_expand(text, DAY_OF_MONTH))]


def _nearest_weekday(day: int, length: int) -> list[_DaySpec]:
    """Quartz's ``nW``: the weekday nearest ``day``, never leaving the month."""
    specs = [_DaySpec(frozenset({day}), WEEKDAYS)]
    # day is a Saturday: the Friday before, or the Monday after when day is the 1st
    if day > 1:
        specs.append(_DaySpec(frozenset({day - 1}), frozenset({FRIDAY})))
    else:
        specs.append(_DaySpec(frozenset({day + 2}), frozenset({MONDAY})))
    # day is a Sunday: the Monday after, or the Friday before when day is the last day
    if day < length:
        specs.append(_DaySpec(frozenset({day + 1}), frozenset({MONDAY})))
    else:
        specs.append(_DaySpec(frozenset({day - 2}), frozenset({FRIDAY})))
    return specs


def _day_of_week_specs(text: str, length: int) -> list[_DaySpec]:
    upper = text.upper()
    if upper == "L":  # Quartz: L alone in day-of-week is Saturday
        return [_DaySpec(frozenset(range(1, 32)), frozenset({6}))]
    if match := _LAST_OF_WEEK.match(upper):
        weekday = _single_weekday(match.group(1), text)
        return [_DaySpec(frozenset(range(length - 6, length + 1)), frozenset({weekday}))]
    if match := _NTH_OF_WEEK.match(upper):
        weekday = _single_weekday(match.group(1), text)
        nth = int(match.group(2))
        if not 1 <= nth <= 5:
            raise CronTranslationError(f"day-of-week: {text!r}: the n in #n must be 1-5")
        first = 7 * (nth - 1) + 1
        return [_DaySpec(frozenset(range(first, min(first + 6, 31) + 1)), frozenset({weekday}))]
    if "L" in upper or "#" in upper:
        raise CronTranslationError(
            f"day-of-week: {text!r}: L and # take one weekday, not a list or range (Quartz: nL, n#k)"
        )
    return [_DaySpec(frozenset(range(1, 32)), frozenset(d - 1 for d in _expand(text, DAY_OF_WEEK)))]


def _single_weekday(token: str, text: str) -> int:
    if "," in token or "-" in token or "/" in token:
        raise CronTranslationError(f"day-of-week: {text!r}: L and # take one weekday")
    return _value(token, DAY_OF_WEEK) - 1


def _depends_on_month_length(day_of_month: str | None, day_of_week: str | None) -> bool:
    if day_of_month is not None:
        upper = day_of_month.upper()
        return "L" in upper or "W" in upper
    return day_of_week is not None and bool(_LAST_OF_WEEK.match(day_of_week.upper()))


def translate(expression: str) -> list[ScheduleCalendarSpec]:
    """Calendar specs whose union fires exactly when the Quartz ``expression`` does."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CronTranslationError(
            f"the expression is {len(expression)} characters long; at most {MAX_EXPRESSION_LENGTH} "
            "(Temporal keeps it in a 200-character comment)"
        )
    if not expression.isascii():
        raise CronTranslationError(
            "the expression has characters other than ASCII: Quartz fields are ASCII digits, names and "
            "the symbols * ? , - / L W #"
        )
    fields = expression.split()
    if len(fields) not in (6, 7):
        raise CronTranslationError(
            f"{expression!r} has {len(fields)} fields; Quartz cron has 6 or 7: "
            "seconds minutes hours day-of-month month day-of-week [year]"
        )
    sec_text, min_text, hour_text, dom_text, month_text, dow_text = fields[:6]
    for name, text in (("seconds", sec_text), ("minutes", min_text), ("hours", hour_text)):
        if "?" in text or "L" in text.upper() or "W" in text.upper() or "#" in text:
            raise CronTranslationError(f"{name}: {text!r}: ?, L, W and # belong to the day fields")
    if "?" in month_text:
        raise CronTranslationError(f"month: {month_text!r}: ? belongs to the day fields")
    if (dom_text == "?") == (dow_text == "?"):
        raise CronTranslationError(
            "exactly one of day-of-month and day-of-week must be '?' "
            f"(got {dom_text!r} and {dow_text!r}); Quartz does not combine them"
        )
    seconds = _to_ranges(_expand(sec_text, SECONDS))
    minutes = _to_ranges(_expand(min_text, MINUTES))
    hours = _to_ranges(_expand(hour_text, HOURS))
    months = _expand(month_text, MONTH)
    years: frozenset[int] | None = None
    if len(fields) == 7 and fields[6] != "*":
        if "?" in fields[6]:
            raise CronTranslationError(f"year: {fields[6]!r}: ? belongs to the day fields")
        years = frozenset(y for y in _expand(fields[6], YEAR) if y >= MIN_YEAR)
        if not years:
            raise CronTranslationError(f"year: {fields[6]!r}: every year named is in the past")
    day_of_month = None if dom_text == "?" else dom_text
    day_of_week = None if dow_text == "?" else dow_text

    if day_of_month is not None and not _depends_on_month_length(day_of_month, None):
        longest = max(calendar.monthrange(2028, m)[1] for m in months)  # 2028: February has 29 days
        if min(_expand(day_of_month, DAY_OF_MONTH)) > longest:
            raise CronTranslationError(
                f"{expression!r} never fires: day-of-month {day_of_month} is past the end of every month"
            )
    if _depends_on_month_length(day_of_month, day_of_week):
        classes = _month_classes(months, years)
    else:
        classes = [_MonthClass(months, 31, years)]
    specs: list[ScheduleCalendarSpec] = []
    for month_class in classes:
        if day_of_month is not None:
            days = _day_of_month_specs(day_of_month, month_class.length)
        else:
            days = _day_of_week_specs(day_of_week or "*", month_class.length)
        for day in days:
            in_month = [d for d in day.days_of_month if d <= month_class.length]
            if not in_month:
                continue
            specs.append(
                ScheduleCalendarSpec(
                    second=seconds,
                    minute=minutes,
                    hour=hours,
                    day_of_month=_to_ranges(in_month),
                    month=_to_ranges(month_class.months),
                    year=_to_ranges(month_class.years) if month_class.years is not None else (),
                    day_of_week=_to_ranges(day.days_of_week),
                    comment=f"{COMMENT_PREFIX}{expression}",
                )
            )
    if not specs:
        raise CronTranslationError(f"{expression!r} never fires")
    return specs


def _values(ranges: Sequence[ScheduleRange], low: int, high: int) -> list[int]:
    """The values a spec field matches, sorted (no ranges: every value, as Temporal reads it)."""
    if not ranges:
        return list(range(low, high + 1))
    found: set[int] = set()
    for r in ranges:
        found.update(range(r.start, max(r.end, r.start) + 1, r.step or 1))
    return sorted(v for v in found if low <= v <= high)


def first_fire_day(specs: Sequence[ScheduleCalendarSpec], start: date) -> date | None:
    """The first day from ``start`` on which one of ``specs`` fires (every spec fires at some time of day);
    None when none does up to MAX_YEAR, the end of Temporal's calendar."""
    first: date | None = None
    for spec in specs:
        months = _values(spec.month, 1, 12)
        days = _values(spec.day_of_month, 1, 31)
        weekdays = set(_values(spec.day_of_week, 0, 6))
        for year in _values(spec.year, start.year, MAX_YEAR):
            found = next(
                (
                    day
                    for month in months
                    for day in (
                        date(year, month, d) for d in days if d <= calendar.monthrange(year, month)[1]
                    )
                    if day >= start and day.isoweekday() % 7 in weekdays
                ),
                None,
            )
            if found is not None:
                first = found if first is None else min(first, found)
                break
    return first
