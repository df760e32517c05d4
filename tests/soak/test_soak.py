"""The soak (`make soak`, bench/soak.py) kept from rotting: its verdict on flatness, and one short cycle of
every task type on a real embedded stack (`taskplan run`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.soak import SoakOptions, run_soak, table
from bench.soak_probe import flatness

TASK_TYPES = {
    "NoOpTask",
    "FileIngestionTask",
    "SegmentPurgeTask",
    "AlterTableTask",
    "MergeRollupTask",
    "RealtimeToOfflineSegmentsTask",
    "DataExportTask",
}


def samples(rss: list[float], fds: list[int]) -> list[dict[str, Any]]:
    return [
        {"minute": float(m), "processes": {"minion": {"rss_mb": r, "fds": f}}}
        for m, (r, f) in enumerate(zip(rss, fds, strict=True))
    ]


def test_the_verdict_tells_a_leak_from_noise_and_warm_up() -> None:
    # Warm-up in the first half, then noise of a few MB around a level: flat.
    warm = [150.0 + 4 * m for m in range(15)] + [210.0 + (3 if m % 2 else -3) for m in range(15)]
    assert flatness("minion", samples(warm, [20] * 30)).flat
    # 0.5 MB a minute, steadily: 7 MB over the second half of a 30-minute run is more than 5 MB.
    leak = [200.0 + 0.5 * m for m in range(30)]
    verdict = flatness("minion", samples(leak, [20] * 30))
    assert not verdict.flat and verdict.rss_slope_mb_per_min == pytest.approx(0.5)
    # One file descriptor more every five minutes.
    fds = [20 + m // 5 for m in range(30)]
    assert not flatness("minion", samples([200.0] * 30, fds)).flat
    assert flatness("minion", samples([200.0] * 30, [20, 21] * 15)).flat


@pytest.mark.postgres
async def test_one_soak_cycle_of_every_task_type_on_the_embedded_stack(tmp_path: Path) -> None:
    options = SoakOptions(
        minutes=0.01, sample_seconds=5, max_cycles=1, results_dir=tmp_path, graceful_stop=False
    )
    result = await run_soak(options)
    assert result["errors"] == [], json.dumps(result["errors"], indent=1)
    assert result["plans"] == result["plans_ok"] == 8
    assert set(result["per_task_type"]) == TASK_TYPES
    assert all(r["history_events"] > 0 and r["history_bytes"] > 0 for r in result["records"])
    first, last = result["samples"][0], result["samples"][-1]
    assert set(last["processes"]) == {"temporal", "controller", "minion", "api", "supervisor"}
    assert all(p["rss_mb"] > 10 and p["fds"] > 0 for p in last["processes"].values())
    # The cycle drops its tables: the catalog holds what it held before the cycle, but for the schemas
    # (taskplan has no endpoint that deletes a schema; a table's drop leaves it, as Pinot's does).
    left = dict(last["catalog_rows_by_table"])
    assert left.pop("tp_schemas") == 2 and left == first["catalog_rows_by_table"]
    assert "memory and fds" in table(result)
