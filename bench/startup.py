"""Issue 22, point 6: start-up. `python -m bench.startup [--full]` (scenario `startup`; full: 5 rounds).

1. ``taskplan run`` (the installed venv's script, what `make run` runs) on free ports and its own data
   directory, to ``GET /health`` answering 200 (Temporal up and a controller worker polling): the first
   start on an empty data directory (the catalog created), then restarts on the same directory. Beside it,
   when the API first answered at all (``/health/liveness``).
2. A minion's start to its first subtask: with that stack up, a NoOpTask plan on a table whose
   ``minionInstanceTag`` no running minion serves, then ``taskplan worker --role minion --tag <that tag>``;
   the seconds from spawning the process to its poller being seen by Temporal, and to the subtask's
   ``finishedAtMs`` (a NoOpTask subtask ends within milliseconds of its start; the plan records the time it
   saw it end, on this machine's clock; ``startedAtMs`` is when the plan scheduled it, before the minion).

Nothing here uses the bench stack's dev server: the stack under test starts its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.harness import REPO, BenchStack, Report, median

TASKPLAN = Path(sys.executable).with_name("taskplan")  # the installed console script
LIMIT_S = 10.0


def spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class StackStart:
    live_s: float  # spawn -> GET /health/liveness 200 (the API process serves)
    health_s: float  # spawn -> GET /health 200
    cpu_s: dict[str, float]  # CPU seconds each process of the stack had used by then (load-independent)


def process_tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of ``root`` and its descendants, by a short name of each."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        stats[int(entry.name)] = [command, fields[11], fields[12]]
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += [child for child, parent in parents.items() if parent == pid]
        if pid in stats:
            command, utime, stime = stats[pid]
            name = (
                "dev server" if "start-dev" in command
                else "controller" if "controller" in command
                else "minion" if "minion" in command
                else "api" if " api " in command
                else "taskplan run"
            )  # fmt: skip
            found[name] = found.get(name, 0.0) + (int(utime) + int(stime)) / tick
    return found


@dataclass
class EmbeddedStack:
    data_dir: Path
    config: Path
    api: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, root: Path, env: dict[str, str]) -> EmbeddedStack:
        return cls(root / "data", root / "taskplan.properties", "", {**os.environ, **env})

    def new_ports(self) -> None:
        """Free ports for each start (one found free minutes earlier may be taken by then)."""
        temporal, api, metrics = free_port(), free_port(), free_port()
        self.config.write_text(
            f"temporal.address=127.0.0.1:{temporal}\ncontroller.port={api}\n"
            f"taskplan.metrics.port={metrics}\ntaskplan.dataDir={self.data_dir}\n"
        )
        self.api = f"http://127.0.0.1:{api}"

    async def start(self, http: httpx.AsyncClient) -> StackStart:
        log = self.data_dir.parent / "run.log"
        self.new_ports()
        command = [str(TASKPLAN), "--config", str(self.config), "run", "--ui-port", str(free_port())]
        t0 = time.monotonic()
        self.process = spawn(command, log, self.env)
        live = None
        while time.monotonic() - t0 < 120:
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                code = self.process.returncode
                raise RuntimeError(f"taskplan run exited with {code}; its output ends:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if live is None and (await http.get(f"{self.api}/health/liveness")).status_code == 200:
                    live = time.monotonic() - t0
                if (await http.get(f"{self.api}/health")).status_code == 200:
                    health = time.monotonic() - t0
                    cpu = process_tree_cpu(self.process.pid)
                    return StackStart(live if live is not None else health, health, cpu)
            await asyncio.sleep(0.05)
        raise RuntimeError(f"GET /health did not answer 200 within 120 s (see {log})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C: the supervisor stops its children in order
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


async def minion_first_subtask(stack: EmbeddedStack, http: httpx.AsyncClient) -> tuple[float, float]:
    """(spawn -> Temporal sees the minion's poller, spawn -> its first subtask done), in seconds."""
    tag = f"startup{uuid.uuid4().hex[:8]}"
    raw = f"startup{uuid.uuid4().hex[:8]}"
    schema = {"schemaName": raw, "dimensionFieldSpecs": [{"name": "id", "dataType": "LONG"}]}
    (await http.post(f"{stack.api}/schemas", json=schema)).raise_for_status()
    table = {
        "tableName": raw,
        "tableType": "OFFLINE",
        "task": {
            "taskTypeConfigsMap": {"NoOpTask": {"minionInstanceTag": tag, "enableTaskOrchestration": "true"}}
        },
    }
    (await http.post(f"{stack.api}/tables", json=table)).raise_for_status()
    started = await http.post(
        f"{stack.api}/tasks/schedule",
        params={"taskType": "NoOpTask", "tableName": f"{raw}_OFFLINE", "minionInstanceTag": tag},
    )
    started.raise_for_status()
    plan_id = started.json().get("NoOpTask", "")
    if not plan_id or "," in plan_id:
        raise RuntimeError(f"not one plan started: {started.text}")
    log = stack.data_dir.parent / "minion.log"
    command = [str(TASKPLAN), "--config", str(stack.config), "worker", "--role", "minion", "--tag", tag]
    command += ["--metrics-port", "0", "--graceful-shutdown-seconds", "1"]
    spawned_ms = time.time() * 1000
    t0 = time.monotonic()
    minion = spawn(command, log, stack.env)
    try:
        polling = None
        while polling is None and time.monotonic() - t0 < 120:
            listed = (await http.get(f"{stack.api}/instances", params={"tag": tag})).json()
            if listed.get("instances"):
                polling = time.monotonic() - t0
            else:
                await asyncio.sleep(0.05)
        plan = (
            await http.get(f"{stack.api}/tasks/taskPlans/{plan_id}", params={"waitForTerminalSeconds": 120})
        ).json()
        batch = plan["batches"][0]["submittedTaskName"]
        report = (await http.get(f"{stack.api}/tasks/task/{batch}/subtasks")).json()
        first_ms = min(s["finishedAtMs"] for s in report["subtasks"] if s.get("finishedAtMs"))
    finally:
        minion.send_signal(signal.SIGTERM)
        minion.wait(timeout=60)
    return (polling if polling is not None else float("nan")), (first_ms - spawned_ms) / 1000


@dataclass
class Variant:
    """The code under test: this tree, or another checkout of taskplan (``--against``) run with the same
    venv, its package first on PYTHONPATH (the embedded stack starts its processes from that tree)."""

    name: str
    env: dict[str, str]
    starts: list[StackStart] = field(default_factory=list)
    minions: list[tuple[float, float]] = field(default_factory=list)


async def measure(variants: list[Variant], rounds: int) -> None:
    """Rounds alternate between the variants (one stack up at a time); the last round of each also
    measures its minions' start."""
    with tempfile.TemporaryDirectory(prefix="taskplan-startup-") as tmp:
        stacks = []
        for i, variant in enumerate(variants):
            (Path(tmp) / str(i)).mkdir()
            stacks.append(EmbeddedStack.create(Path(tmp) / str(i), variant.env))
        async with httpx.AsyncClient(timeout=60) as http:
            for i in range(rounds):
                for variant, stack in zip(variants, stacks, strict=True):
                    try:
                        variant.starts.append(await stack.start(http))
                        done = variant.starts[-1]
                        print(f"   {variant.name} taskplan run #{i + 1}: /health OK in {done.health_s:.1f} s "
                              f"(CPU s {done.cpu_s}; load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
                        if i == rounds - 1:
                            for _ in range(rounds):
                                variant.minions.append(await minion_first_subtask(stack, http))
                    finally:
                        stack.stop()


def add_rows(report: Report, variant: Variant, label: str) -> None:
    first, restarts = variant.starts[0], variant.starts[1:]
    restart = median([s.health_s for s in restarts])
    report.add(
        "22.6 start-up",
        f"{label}`taskplan run` -> GET /health 200: first start (empty data dir) / restart, median of "
        f"{len(restarts)} (API serving at)",
        f"{first.health_s:.1f} s / {restart:.1f} s (API {first.live_s:.1f} s / "
        f"{median([s.live_s for s in restarts]):.1f} s)",
        f"< {LIMIT_S:.0f} s",
        max(first.health_s, restart) < LIMIT_S,
    )
    cpu = {name: median([s.cpu_s.get(name, 0.0) for s in restarts]) for name in restarts[0].cpu_s}
    report.add(
        "22.6 start-up",
        f"{label}CPU seconds used by then, per process (restart, median)",
        ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(cpu.items()))
        + f"; in all {sum(cpu.values()):.1f}",
    )
    minions = variant.minions
    report.add(
        "22.6 start-up",
        f"{label}minion process start -> its poller seen / its first (no-op) subtask done, "
        f"median of {len(minions)}",
        f"{median([m[0] for m in minions]):.1f} s / {median([m[1] for m in minions]):.1f} s "
        f"(rounds {', '.join(f'{m[1]:.1f}' for m in minions)})",
    )
    report.data[f"startup {variant.name}"] = {
        "starts": [s.__dict__ for s in variant.starts],
        "minions": [{"polling_s": m[0], "first_subtask_s": m[1]} for m in minions],
    }


async def startup(_stack: BenchStack | None, report: Report, full: bool, against: Path | None = None) -> None:
    variants = [Variant("this tree", {})]
    if against is not None:
        variants.append(Variant(f"{against}", {"PYTHONPATH": str(against)}))
    await measure(variants, 5 if full else 3)
    for variant in variants:
        add_rows(report, variant, "" if against is None else f"{variant.name}: ")
    report.data["load_average"] = os.getloadavg()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="5 rounds instead of 3")
    parser.add_argument(
        "--against", type=Path, help="another taskplan checkout to measure side by side (e.g. `git worktree "
        "add /tmp/base <commit>`), run with this venv"
    )  # fmt: skip
    args = parser.parse_args()
    result = Report()
    asyncio.run(startup(None, result, args.full, args.against.resolve() if args.against else None))
    print(result.table())
    print(f"\nresults: {result.write('startup')}; load average {os.getloadavg()}")
