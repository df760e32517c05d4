"""Run the benchmarks: `python -m bench.run [--full] [--only overhead,throughput,many,long,data,scale,...]`
(a choice of scenarios); one scenario alone: `python -m bench.<module> [--full]` (bench/overhead.py,
throughput.py, many_plans.py, long_plan.py, data_plane.py, scale.py, sizing.py, table_growth.py, ...).

Every comparison runs side by side in this one run and is reported as a ratio (these machines are noisy);
absolute figures stand beside the ratios. Results go to bench/results/<name>-<time>.json; the summary table
is printed (Markdown, as pasted into the README).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from bench.harness import Report, bench_stack, machine
from bench.scenarios import SCENARIOS


async def main_async(full: bool, only: list[str]) -> None:
    report = Report()
    started = time.monotonic()
    async with bench_stack() as stack:
        for name in only:
            t0 = time.monotonic()
            print(f"-- {name} ...", flush=True)
            await SCENARIOS[name](stack, report, full)
            print(f"   {time.monotonic() - t0:.0f} s", flush=True)
    path = report.write("bench-full" if full else "bench")
    info = machine()
    print(f"\nmachine: {info['cpus']} CPUs, {info['memory_gb']} GB, Python {info['python']}; "
          f"{'full' if full else 'quick'} sizes; {time.monotonic() - started:.0f} s in all")  # fmt: skip
    print(report.table())
    print(f"\nresults: {path}")


def main(only: str | None = None) -> None:
    """The command line; a scenario's own module runs it with ``only`` set to that scenario."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="the issue's full sizes (long)")
    parser.add_argument("--only", default=only or ",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(args.full, chosen))


if __name__ == "__main__":
    main()
