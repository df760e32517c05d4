"""Scenario 3: no-op subtasks per second with 1, 2 and 4 minion processes, plan against bare activities.
`python -m bench.throughput [--full]`."""

from __future__ import annotations

import asyncio

from bench.harness import BenchStack, Report, median, new_raw_name
from bench.plans import NOOP, plan_seconds, run_baseline, run_plan

ROUNDS = 3


async def throughput(stack: BenchStack, report: Report, full: bool) -> None:
    total = 4000 if full else 1000
    per_batch = 1000
    batches = total // per_batch
    table = stack.add_table(new_raw_name("throughput"))
    for count in (1, 2, 4):
        stack.start_minions(count)
        await run_baseline(stack, table, 1, 50)  # every minion polling
        await asyncio.sleep(1)
        bare: list[float] = []
        planned: list[float] = []
        for _ in range(ROUNDS):  # back to back: the median of the rounds' ratios
            bare.append((await run_baseline(stack, table, batches, per_batch))[0])
            plan = await run_plan(
                stack, table, NOOP, {"numBatches": str(batches), "numSubtasksPerBatch": str(per_batch)}
            )
            planned.append(plan_seconds(plan))
        ratios = [b / p for b, p in zip(bare, planned, strict=True)]
        ratio = median(ratios)
        bare_s, plan_s = median(bare), median(planned)
        report.add(
            "3 throughput",
            f"{count} minion process{'es' if count > 1 else ''}: subtasks/s, plan vs bare activities, "
            f"median of {ROUNDS} rounds",
            f"{total / plan_s:.0f} vs {total / bare_s:.0f} "
            f"({ratio:.2f}; rounds {min(ratios):.2f}-{max(ratios):.2f})",
            ">= 0.8",
            ratio >= 0.8,
        )
        report.data[f"throughput_{count}"] = {"plan_s": planned, "bare_s": bare, "subtasks": total}
        stack.stop_minions()


if __name__ == "__main__":
    from bench.run import main

    main(only="throughput")
