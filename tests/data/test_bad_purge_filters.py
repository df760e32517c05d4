"""purgeFilter values that are not one usable boolean expression: refused when the plan is triggered (400
naming the problem), never accepted and then failing the plan, never a RecursionError."""

from __future__ import annotations

import uuid

import httpx
import pytest

from taskplan.data.parquet import column_types
from taskplan.data.predicate import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_TERMS,
    PurgeFilterError,
    validate_purge_filter,
)
from tests.data.test_data_plans import create, execute
from tests.support.data import events_schema

COLUMNS = column_types(events_schema("t"))  # id, country, tags, amount, ts

REFUSED = {
    "a DOUBLE column": ("amount", "must be a boolean expression"),
    "a STRING column": ("country", "not a value of type VARCHAR"),
    "arithmetic": ("amount * 2", "must be a boolean expression"),
    "a list column": ("tags", "not a value of type VARCHAR[]"),
    "900 nested NOTs": ("NOT " * 900 + "amount = 1", f"deeper than {MAX_FILTER_DEPTH} levels"),
    "900 chained sums": (" + ".join(["amount"] * 900) + " > 1", f"deeper than {MAX_FILTER_DEPTH} levels"),
    "900 nested calls": ("abs(" * 900 + "amount" + ")" * 900 + " > 1", "deeper than"),
    "1,001 terms": (
        "id IN (" + ", ".join(map(str, range(1001))) + ")",
        f"more than {MAX_FILTER_TERMS} terms",
    ),
    "a constant that cannot be cast": ("amount > 'x'", "cannot be evaluated: Conversion Error"),
    "a broken regular expression": ("regexp_matches(country, '(')", "cannot be evaluated"),
    "mismatched types": ("country + 1 > 2", "cannot be evaluated: Binder Error"),
}


@pytest.mark.parametrize(("expression", "message"), REFUSED.values(), ids=list(REFUSED))
def test_a_filter_that_cannot_purge_is_refused(expression: str, message: str) -> None:
    with pytest.raises(PurgeFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_purge_filter(expression, COLUMNS)


def test_filters_within_the_limits_pass() -> None:
    depth_left = MAX_FILTER_DEPTH - 2  # the comparison and its column are two levels
    for expression in (
        "NOT " * depth_left + "amount = 1",
        "id IN (" + ", ".join(map(str, range(MAX_FILTER_TERMS - 2))) + ")",
        "(" * 400 + "amount = 1" + ")" * 400,  # parentheses alone nest no expression
        "true",
        "country IS NULL",
        "amount > 1e300",
    ):
        assert validate_purge_filter(expression, COLUMNS) == expression


@pytest.mark.parametrize(
    ("expression", "message"),
    [REFUSED["a DOUBLE column"], REFUSED["900 nested NOTs"], REFUSED["a constant that cannot be cast"]],
    ids=["not boolean", "900 terms deep", "uncastable constant"],
)
async def test_the_api_refuses_such_a_filter_when_triggered(
    http: httpx.AsyncClient, expression: str, message: str
) -> None:
    table = await create(http, f"purgebad{uuid.uuid4().hex[:8]}")
    for orchestrated in ("true", "false"):
        response = await execute(
            http, "SegmentPurgeTask", table, purgeFilter=expression, enableTaskOrchestration=orchestrated
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert "task.taskTypeConfigsMap.SegmentPurgeTask" in error and message in error, error
    plans = (await http.get(f"/tasks/taskPlans?tableNameWithType={table}&taskType=SegmentPurgeTask")).json()
    assert plans == []
