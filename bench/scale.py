"""Scenario 7: what a second controller (and a second minion) buys. The overhead and throughput scenarios'
plans, run with one controller and one minion, then with two controllers and two minion processes, on the
same dev server, alternating setups round by round: the ratio of the two (above 1: the pair is faster).
`python -m bench.scale [--full]`.

The first controller is the bench's own (in this process); the second is a ``worker.py --role controller``
process, as deployed. The cluster-wide jobs run in one of them (workflows/cluster_jobs.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from bench.harness import REPO, BenchStack, Report, median, new_raw_name
from bench.plans import NOOP, plan_seconds, run_baseline, run_plan

ROUNDS = 3


def start_controller(stack: BenchStack) -> subprocess.Popen[bytes]:
    env = {**stack._environment(), "TASKPLAN_METRICS_PORT": "0"}
    log = (stack.data_dir / "controller2.log").open("ab")
    command = [sys.executable, "worker.py", "--role", "controller", "--graceful-shutdown-seconds", "1"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def scale(stack: BenchStack, report: Report, full: bool) -> None:
    batches, per_batch = (200, 10) if full else (40, 10)
    total = 4000 if full else 2000
    table = stack.add_table(new_raw_name("scale"))
    overhead: dict[int, list[float]] = {1: [], 2: []}
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(ROUNDS):
        for pair in (1, 2):
            extra = start_controller(stack) if pair == 2 else None
            stack.start_minions(pair)
            try:
                await run_baseline(stack, table, 2, 50)  # the minions poll
                await run_plan(stack, table, NOOP, {"numBatches": "2", "numSubtasksPerBatch": "10"})
                await asyncio.sleep(1)
                plan = await run_plan(
                    stack, table, NOOP, {"numBatches": str(batches), "numSubtasksPerBatch": str(per_batch)}
                )
                overhead[pair].append(plan_seconds(plan))
                plan = await run_plan(
                    stack, table, NOOP, {"numBatches": str(total // 1000), "numSubtasksPerBatch": "1000"}
                )
                rates[pair].append(total / plan_seconds(plan))
            finally:
                stack.stop_minions()
                if extra is not None:
                    stop(extra)
    speedups = [one / two for one, two in zip(overhead[1], overhead[2], strict=True)]
    report.add(
        "7 scale",
        f"overhead plan ({batches} x {per_batch} no-op): 2 controllers + 2 minions vs 1 + 1, time ratio "
        f"(1+1 / 2+2), median of {ROUNDS} rounds",
        f"{median(speedups):.2f} ({median(overhead[2]):.1f} s vs {median(overhead[1]):.1f} s; "
        f"rounds {min(speedups):.2f}-{max(speedups):.2f})",
    )
    gains = [two / one for one, two in zip(rates[1], rates[2], strict=True)]
    report.add(
        "7 scale",
        f"throughput plan ({total} no-op subtasks, 1,000 per batch): subtasks/s, 2 + 2 vs 1 + 1, "
        f"median of {ROUNDS} rounds",
        f"{median(gains):.2f} ({median(rates[2]):.0f} vs {median(rates[1]):.0f} per s; "
        f"rounds {min(gains):.2f}-{max(gains):.2f})",
    )
    report.data["scale"] = {"overhead_s": overhead, "subtasks_per_s": rates}


if __name__ == "__main__":
    from bench.run import main

    main(only="scale")
