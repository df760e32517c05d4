"""The flush thresholds a table config may be saved with are exactly ones the consuming segment can use."""

from __future__ import annotations

import pytest

from taskplan.data.segments import FLUSH_ROWS, FLUSH_TIME
from taskplan.models.table import TableConfig, parse_period_ms

ACCEPTED_ROWS = ["1", "5", " 100 ", "2147483647"]
REFUSED_ROWS = ["2147483648", "0", "-1", "abc", "1.5", "1e3", "\u0663", "", "9" * 5000]
ACCEPTED_PERIODS = ["6h", "30m", "10s", "1d", "500ms", "1 h", "6H", " 2m ", "4h30m", "1d12h", "1m30s500ms"]
REFUSED_PERIODS = ["0h", "6", "h", "soon", "-1h", "1.5h", "\u0663h", "", "6 hours", "30m4h", "1d1d", "0h0m"]


def problems(key: str, value: str) -> list[str]:
    config = TableConfig.model_validate(
        {"tableName": "t", "tableType": "REALTIME", "tableIndexConfig": {"streamConfigs": {key: value}}}
    )
    return config.stream_config_problems()


@pytest.mark.parametrize("value", ACCEPTED_ROWS)
def test_a_positive_row_count_is_accepted_and_usable(value: str) -> None:
    assert problems(FLUSH_ROWS, value) == []
    assert int(value) > 0  # what the consuming segment reads


@pytest.mark.parametrize("value", REFUSED_ROWS)
def test_other_row_counts_are_refused(value: str) -> None:
    [problem] = problems(FLUSH_ROWS, value)
    assert problem.startswith(f"tableIndexConfig.streamConfigs.{FLUSH_ROWS}: ")


@pytest.mark.parametrize("value", ACCEPTED_PERIODS)
def test_a_period_is_accepted_when_the_consuming_segment_parses_it(value: str) -> None:
    assert problems(FLUSH_TIME, value) == []
    assert parse_period_ms(value) > 0


@pytest.mark.parametrize("value", REFUSED_PERIODS)
def test_other_periods_are_refused(value: str) -> None:
    [problem] = problems(FLUSH_TIME, value)
    assert problem.startswith(f"tableIndexConfig.streamConfigs.{FLUSH_TIME}: ")
