"""Scenarios 1 and 2: orchestration overhead (a plan against the simplest hand-written workflow) and the
gap between batches, measured on the same plans. `python -m bench.overhead [--full]`."""

from __future__ import annotations

from bench.harness import BenchStack, Report, median, new_raw_name, percentile
from bench.plans import NOOP, plan_seconds, run_baseline, run_plan
from taskplan.models.plan import TaskPlan


async def overhead(stack: BenchStack, report: Report, full: bool) -> None:
    batches, per_batch, rounds = (200, 10, 3) if full else (40, 10, 5)
    stack.start_minions(1)
    table = stack.add_table(new_raw_name("overhead"))
    await run_baseline(stack, table, 2, per_batch)  # warm up workers and caches
    plan_times: list[float] = []
    base_times: list[float] = []
    last: TaskPlan | None = None
    for _ in range(rounds):
        elapsed, _ = await run_baseline(stack, table, batches, per_batch)
        base_times.append(elapsed)
        last = await run_plan(
            stack, table, NOOP, {"numBatches": str(batches), "numSubtasksPerBatch": str(per_batch)}
        )
        plan_times.append(plan_seconds(last))
    # Each round runs the baseline and the plan back to back: the median of the rounds' ratios.
    ratios = [p / b for p, b in zip(plan_times, base_times, strict=True)]
    ratio = median(ratios)
    shape = f"{batches} batches x {per_batch} no-op subtasks"
    report.add(
        "1 overhead",
        f"plan vs hand-written workflow ({shape}), median of {rounds} rounds",
        f"{ratio:.2f} ({median(plan_times):.1f} s vs {median(base_times):.1f} s; "
        f"rounds {min(ratios):.2f}-{max(ratios):.2f})",
        "<= 1.3",
        ratio <= 1.3,
    )
    assert last is not None
    gaps = await batch_gaps(stack, last)
    report.add(
        "2 batch gap",
        "median / p99 (last subtask end -> next first subtask start)",
        f"{median(gaps):.0f} ms / {percentile(gaps, 99):.0f} ms",
        "<= 100 / <= 400 ms",
        median(gaps) <= 100 and percentile(gaps, 99) <= 400,
    )
    report.data["overhead"] = {
        "plan_s": plan_times,
        "baseline_s": base_times,
        "ratios": ratios,
        "gaps_ms": gaps,
    }
    stack.stop_minions()


async def batch_gaps(stack: BenchStack, plan: TaskPlan) -> list[float]:
    spans: list[tuple[int, int]] = []
    for record in plan.batches:
        details = await stack.plans.task_reader.batch_details(record.submitted_task_name)
        starts = [s.started_at_ms for s in details.subtasks if s.started_at_ms]
        ends = [s.finished_at_ms for s in details.subtasks if s.finished_at_ms]
        if starts and ends:
            spans.append((min(starts), max(ends)))
    return [float(spans[i][0] - spans[i - 1][1]) for i in range(1, len(spans))]


if __name__ == "__main__":
    from bench.run import main

    main(only="overhead")
