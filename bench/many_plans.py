"""Scenario 4: hundreds of plans started at once through the API; the API's latencies meanwhile, peak memory.
`python -m bench.many_plans [--full]`."""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from bench.harness import BenchStack, Report, median, new_raw_name, percentile, rss_mb
from bench.plans import NOOP


async def many_plans(stack: BenchStack, report: Report, full: bool) -> None:
    count = 500 if full else 100
    stack.start_minions(2)
    tables = [stack.add_table(new_raw_name("many")) for _ in range(count)]
    list_ms: list[float] = []
    burst_ms: list[float] = []  # the listing's times while the plans are being submitted
    after_ms: list[float] = []
    get_ms: list[float] = []
    async with stack.api() as (http, api_pid):
        started = time.monotonic()

        async def execute(table: str) -> str:
            body = {
                "taskType": NOOP,
                "tableName": table,
                "taskConfigs": {
                    "enableTaskOrchestration": "true",
                    "numBatches": "2",
                    "numSubtasksPerBatch": "2",
                },
            }
            response = await http.post("/tasks/execute", json=body)
            response.raise_for_status()
            return str(response.json()["taskPlanId"])

        submitting = asyncio.gather(*(execute(t) for t in tables))
        seen: list[str] = []
        done = asyncio.Event()

        async def poll_listing() -> None:
            # From the first submission on (the burst included) until every plan is done.
            while True:
                t0 = time.monotonic()
                in_burst = not submitting.done()
                active = (await poll.get("/tasks/taskPlans/active", params={"batchLimit": 0})).json()
                list_ms.append((time.monotonic() - t0) * 1000)
                (burst_ms if in_burst else after_ms).append(list_ms[-1])
                seen[:] = [p["planId"] for p in active]
                if submitting.done() and not active:
                    done.set()
                    return
                await asyncio.sleep(0.2)

        async def poll_plans() -> None:
            while not done.is_set():
                if seen:
                    t0 = time.monotonic()
                    (await poll.get(f"/tasks/taskPlans/{random.choice(seen)}")).raise_for_status()
                    get_ms.append((time.monotonic() - t0) * 1000)
                await asyncio.sleep(0.2)

        # The polls have connections of their own: in the submitting client's pool (100 connections) they
        # would queue behind the submissions.
        async with httpx.AsyncClient(base_url=http.base_url, timeout=120) as poll:
            pollers = asyncio.gather(poll_listing(), poll_plans())
            await submitting
            submitted = time.monotonic() - started
            await pollers
        elapsed = time.monotonic() - started
        api_mb = rss_mb(api_pid)
    minion_mb = max(rss_mb(p.pid) for p in stack.minions)
    report.add(
        "4 many plans",
        f"{count} plans started at once through the API",
        f"all done in {elapsed:.1f} s (submitted in {submitted:.1f} s)",
    )
    report.add(
        "4 many plans",
        f"GET /tasks/taskPlans/active p50 / p99 ({len(list_ms)} calls from the first submission on)",
        f"{median(list_ms):.0f} / {percentile(list_ms, 99):.0f} ms",
        "p99 <= 500 ms",
        percentile(list_ms, 99) <= 500,
    )
    report.add(
        "4 many plans",
        "the same, while the plans are submitted / after",
        f"{median(burst_ms):.0f} / {percentile(burst_ms, 99):.0f} ms; "
        f"{median(after_ms):.0f} / {percentile(after_ms, 99):.0f} ms",
    )
    report.add(
        "4 many plans",
        "GET /tasks/taskPlans/{planId} p50 / p99",
        f"{median(get_ms):.0f} / {percentile(get_ms, 99):.0f} ms",
    )
    report.add(
        "4 many plans",
        "peak memory: controller process / API process / a minion",
        f"{rss_mb():.0f} MB / {api_mb:.0f} MB / {minion_mb:.0f} MB",
    )
    report.data["many_plans"] = {
        "list_ms": list_ms,
        "burst_ms": burst_ms,
        "after_ms": after_ms,
        "get_ms": get_ms,
        "elapsed_s": elapsed,
    }
    stack.stop_minions()


if __name__ == "__main__":
    from bench.run import main

    main(only="many")
