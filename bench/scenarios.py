"""The benchmark scenarios (issue #7), one module each, each comparing taskplan with a baseline in one run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.data_plane import data_plane
from bench.data_plane_s3 import data_plane_s3
from bench.harness import BenchStack, Report
from bench.long_plan import long_plan
from bench.many_plans import many_plans
from bench.overhead import overhead
from bench.scale import scale
from bench.table_growth import table_growth
from bench.throughput import throughput

Scenario = Callable[[BenchStack, Report, bool], Awaitable[None]]

SCENARIOS: dict[str, Scenario] = {
    "overhead": overhead,
    "throughput": throughput,
    "many": many_plans,
    "long": long_plan,
    "data": data_plane,
    "data-s3": data_plane_s3,
    "scale": scale,
    "growth": table_growth,
}
