"""Scenario 4: hundreds of plans started at once through the API; the API's latencies meanwhile, peak memory.
`python -m bench.many_plans [--full]` (500 plans; quick: 100); scenario `many-2000`: 2,000 plans with
`--full` (quick: 200), `python -m bench.run --full --only many-2000`."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time

import httpx

from bench.harness import (
    BenchStack,
    Report,
    cpu_s,
    dev_server_pid,
    median,
    new_raw_name,
    percentile,
    rss_mb,
    server_latency_s,
)
from bench.plans import NOOP

UNPOOLED = httpx.Timeout(600, pool=None)  # a start took over 120 s with 2,000 plans on a loaded machine
_LONG_POLLS = re.compile(r"Poll|GetTaskQueueUserData|GetWorkflowExecutionHistory")


async def many_plans_2000(stack: BenchStack, report: Report, full: bool) -> None:
    await many_plans(stack, report, full, count=2000 if full else 200)


async def many_plans(stack: BenchStack, report: Report, full: bool, *, count: int | None = None) -> None:
    count = count or (500 if full else 100)
    stack.start_minions(2)
    tables = [stack.add_table(new_raw_name("many")) for _ in range(count)]
    list_ms: list[float] = []
    burst_ms: list[float] = []  # the listing's times while the plans are being submitted
    after_ms: list[float] = []
    get_ms: list[float] = []
    live_ms: list[float] = []  # the same with ?live=true: the plan's own answer, however long it takes
    failed: list[str] = []
    server_pid = dev_server_pid()
    async with stack.api() as (http, api_pid):
        pids = {"dev server": server_pid, "controller": None, "API": api_pid}
        pids |= {f"minion {i + 1}": m.pid for i, m in enumerate(stack.minions)}
        cpu_before = {name: cpu_s(pid) for name, pid in pids.items() if name == "controller" or pid}
        server_before = server_latency_s(stack.server_metrics_port)
        started = time.monotonic()

        in_flight = asyncio.Semaphore(100)

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
            # As many at once as the client has connections (100): 2,000 requests queued in its pool cost
            # its bookkeeping minutes of CPU here (each new request scans the queue).
            async with in_flight:
                response = await http.post("/tasks/execute", json=body, timeout=UNPOOLED)
            response.raise_for_status()
            return str(response.json()["taskPlanId"])

        seen: list[str] = []
        burst = threading.Event()  # set while the plans are submitted
        done = threading.Event()  # every plan submitted and none active any more
        burst.set()

        async def poll_listing(poll: httpx.AsyncClient) -> None:
            # From the first submission on (the burst included) until every plan is done.
            while True:
                t0 = time.monotonic()
                in_burst = burst.is_set()
                active = (await poll.get("/tasks/taskPlans/active", params={"batchLimit": 0})).json()
                list_ms.append((time.monotonic() - t0) * 1000)
                (burst_ms if in_burst else after_ms).append(list_ms[-1])
                seen[:] = [p["planId"] for p in active]
                if len(list_ms) % 100 == 0:  # progress of a long run, in case it must be cut short
                    print(
                        f"   {time.monotonic() - started:.0f} s: {len(seen)} active, "
                        f"{'submitting' if in_burst else 'submitted'}; "
                        f"listing p99 {percentile(list_ms, 99):.0f} ms, "
                        f"plan read p50/p99 {median(get_ms):.0f}/{percentile(get_ms, 99):.0f} ms "
                        f"({len(get_ms)} calls); peak MB "
                        + ", ".join(
                            f"{n} {rss_mb(pid):.0f}" for n, pid in pids.items() if pid or n == "controller"
                        ),
                        flush=True,
                    )
                if not in_burst and not active:
                    done.set()
                    return
                await asyncio.sleep(0.2)

        async def poll_plans(poll: httpx.AsyncClient, times: list[float], params: dict[str, str]) -> None:
            while not done.is_set():
                if seen:
                    t0 = time.monotonic()
                    path = f"/tasks/taskPlans/{random.choice(seen)}"
                    response = await poll.get(path, params=params)
                    times.append((time.monotonic() - t0) * 1000)
                    if response.status_code != 200:
                        # The plan's own answer can fail (its query timed out on the busy server); the default
                        # read must not.
                        failed.append(f"{response.status_code} {params}: {response.text[:200]}")
                        if not params:
                            response.raise_for_status()
                await asyncio.sleep(0.2)

        async def polls() -> None:
            # Connections of their own (in the submitting client's pool they would queue behind the
            # submissions), and a thread and event loop of their own: this process runs the controller,
            # whose workflow tasks would otherwise delay the polls' callbacks and count in their times.
            async with httpx.AsyncClient(base_url=http.base_url, timeout=120) as poll:
                await asyncio.gather(
                    poll_listing(poll),
                    poll_plans(poll, get_ms, {}),
                    poll_plans(poll, live_ms, {"live": "true"}),
                )

        pollers = threading.Thread(target=asyncio.run, args=(polls(),), name="bench-polls")
        pollers.start()
        try:
            ids = await asyncio.gather(*(execute(t) for t in tables))
        finally:
            burst.clear()
        submitted = time.monotonic() - started
        await asyncio.to_thread(pollers.join)
        elapsed = time.monotonic() - started
        api_mb = rss_mb(api_pid)
        cpu = {name: cpu_s(pids[name]) - used for name, used in cpu_before.items()}
        server_after = server_latency_s(stack.server_metrics_port)

        async def status(plan_id: str) -> httpx.Response:
            async with in_flight:
                return await http.get(f"/tasks/taskPlans/isActive/{plan_id}", timeout=UNPOOLED)

        statuses = await asyncio.gather(*(status(p) for p in ids))
        completed = sum(r.json()["status"] == "COMPLETED" for r in statuses)
    minion_mb = max(rss_mb(p.pid) for p in stack.minions)
    server_mb = rss_mb(server_pid) if server_pid else float("nan")
    server_s = {k: v - server_before.get(k, 0.0) for k, v in server_after.items()}
    top = sorted(server_s.items(), key=lambda kv: -kv[1])
    report.add(
        "4 many plans",
        f"{count} plans started at once through the API",
        f"{completed} COMPLETED, all done in {elapsed:.1f} s (submitted in {submitted:.1f} s)",
        "all complete",
        completed == count,
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
        f"GET /tasks/taskPlans/{{planId}} p50 / p99 ({len(get_ms)} calls; answered from the catalog after "
        f"{stack.settings.plan_query_timeout_s:g} s)",
        f"{median(get_ms):.0f} / {percentile(get_ms, 99):.0f} ms",
        "p99 <= 250 ms",
        percentile(get_ms, 99) <= 250,
    )
    report.add(
        "4 many plans",
        f"the same with ?live=true (the plan's own answer), side by side ({len(live_ms)} calls)",
        f"{median(live_ms):.0f} / {percentile(live_ms, 99):.0f} ms ({len(failed)} failed)",
    )
    report.add(
        "4 many plans",
        "peak memory: controller process / API process / a minion / the dev server",
        f"{rss_mb():.0f} MB / {api_mb:.0f} MB / {minion_mb:.0f} MB / {server_mb:.0f} MB",
    )
    report.add(
        "4 many plans",
        f"CPU seconds in {elapsed:.0f} s: " + " / ".join(cpu),
        " / ".join(f"{v:.0f}" for v in cpu.values()),
    )
    persistence = [(k, v) for k, v in top if k.startswith("persistence")][:4]
    # Long polls (workers waiting for tasks) are time spent waiting, not working: left out.
    service = [(k, v) for k, v in top if k.startswith("service") and not _LONG_POLLS.search(k)][:4]
    report.add(
        "4 many plans",
        "dev server: seconds summed over calls, the busiest persistence (SQLite) and RPC operations",
        "SQLite: "
        + ", ".join(f"{k.split()[1]} {v:.0f}" for k, v in persistence)
        + "; RPC: "
        + ", ".join(f"{k.split()[1]} {v:.0f}" for k, v in service),
    )
    report.data[f"many_plans_{count}"] = {
        "list_ms": list_ms,
        "burst_ms": burst_ms,
        "after_ms": after_ms,
        "get_ms": get_ms,
        "live_ms": live_ms,
        "failed": failed,
        "elapsed_s": elapsed,
        "count": count,
        "completed": completed,
        "peak_mb": {"controller": rss_mb(), "api": api_mb, "minion": minion_mb, "dev_server": server_mb},
        "cpu_s": cpu,
        "server_latency_s": dict(top),
    }
    stack.stop_minions()


if __name__ == "__main__":
    from bench.run import main

    main(only="many")
