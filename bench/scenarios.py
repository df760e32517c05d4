"""The benchmark scenarios (issue #7), one module each, each comparing taskplan with a baseline in one run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.data_plane import data_plane
from bench.data_plane_s3 import data_plane_s3
from bench.export_pg import export_pg
from bench.harness import BenchStack, Report
from bench.long_plan import long_plan
from bench.many_plans import many_plans, many_plans_2000
from bench.overhead import overhead
from bench.scale import scale
from bench.sizing import sizing
from bench.startup import startup
from bench.table_growth import table_growth
from bench.throughput import throughput

Scenario = Callable[[BenchStack, Report, bool], Awaitable[None]]

SCENARIOS: dict[str, Scenario] = {
    "overhead": overhead,
    "throughput": throughput,
    "many": many_plans,
    "many-2000": many_plans_2000,
    "long": long_plan,
    "data": data_plane,
    "data-s3": data_plane_s3,
    "scale": scale,
    "sizing": sizing,
    "export": export_pg,
    "startup": startup,
    "growth": table_growth,
}
