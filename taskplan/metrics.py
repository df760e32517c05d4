"""Controller-side orchestration metrics (OpenTelemetry SDK counters, and per-table gauges kept here so a
dropped table's series can go: ``TableGauge``), exported in Prometheus text format.

Every instrument carries the attributes ``tableNameWithType`` and ``taskType`` (``taskPlansCleanedUp``:
``tableNameWithType`` and ``reason``). Prometheus names counters with a ``_total`` suffix:
``taskPlanAborted`` is scraped as ``taskPlanAborted_total``.

Each process exports the documented families it observed, and all of them from its first scrape (HELP and
TYPE lines without samples until a first event), so a dashboard or an alert never meets a missing family.
Most are observed in the controller worker; the API merges the scrapes of ``taskplan.api.metricsMergeTargets``
(the controller worker's endpoint, in the embedded stack) into its own ``GET /metrics``: counters of the same
series are summed (each process counts its own events), gauges take the highest value (every controller's
orchestration poll sees the same plans, so a sum would count them once per controller).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from opentelemetry.metrics import CallbackOptions, Counter, Observation
from opentelemetry.sdk.metrics import Counter as SdkCounter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from prometheus_client import REGISTRY, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

Kind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Family:
    name: str  # the documented name; OpenTelemetry keeps instrument names lowercased
    kind: Kind
    description: str


FAMILIES = (
    Family("taskPlanAborted", "counter", "plans aborted by a failure-threshold breach or their generator"),
    Family("orchestrationCycleFailure", "counter", "exceptions while progressing a plan"),
    Family("taskPlanProgressionBlocked", "gauge", "1 while a plan's progression is blocked, else 0"),
    Family(
        "scheduledTriggerActivePlanConflict",
        "counter",
        "scheduled triggers skipped because a plan was already active",
    ),
    Family("taskGenerationFailureCount", "counter", "task generation failures"),
    Family("taskPlanInputsToProcess", "gauge", "input units a plan has to process in all"),
    Family("taskPlanInputsBeingProcessed", "gauge", "input units in the running batch"),
    Family("taskPlanInputsProcessed", "gauge", "input units processed so far"),
    Family("activeTaskPlansCount", "gauge", "ACTIVE plans this controller progresses"),
    Family("taskPlansAbortingCount", "gauge", "plans in ABORTING, waiting for their batch"),
    Family(
        "orchestrationTimeSinceLastPollMs",
        "gauge",
        "time since the orchestration poll last ran; rising means it stalled",
    ),
    Family(
        "taskPlansCleanedUp",
        "counter",
        "executions removed by the cleanup sweep (reason: orphan, retention)",
    ),
)
_BY_NAME = {family.name: family for family in FAMILIES}

# The orchestration poll's gauges: only the process that runs the poll (the one controller holding the
# cluster's progress-poll job, workflows/cluster_jobs.py) exports their samples, so a cluster of several
# controllers reports each once; a controller that no longer holds the job exports the families empty.
POLL_FAMILIES = frozenset(
    {
        "taskPlanInputsToProcess",
        "taskPlanInputsBeingProcessed",
        "taskPlanInputsProcessed",
        "activeTaskPlansCount",
        "taskPlansAbortingCount",
        "orchestrationTimeSinceLastPollMs",
    }
)
_poll_owner = False


def set_poll_owner(owner: bool) -> None:
    """Whether this process runs the orchestration poll now (set by the poll, cleared when it moves)."""
    global _poll_owner
    _poll_owner = owner


# Whether each merge target answered its last scrape, so a missing controller shows instead of zeros.
MERGE_TARGET_UP = "metricsMergeTargetUp"

# The OpenTelemetry meter provider may be set up once per process; API and workers share this one.
_lock = threading.RLock()


class _Point(NamedTuple):  # shaped like an OpenTelemetry data point, for _family
    attributes: Mapping[str, str]
    value: float


class _Points(NamedTuple):
    data_points: list[_Point]


class TableGauge:
    """A gauge per table and task type, kept here rather than in an OpenTelemetry instrument: OpenTelemetry
    cannot remove an attribute set, so every table ever seen would keep its series, dropped tables included
    (about 1 KB each, up to the SDK's 2,000 per instrument; past that, new tables' series fold into one
    ``otel_metric_overflow`` series and every series gains that label). ``forget_dropped_tables`` removes a
    dropped table's series, as Pinot removes a deleted table's gauges."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._values: dict[tuple[tuple[str, str], ...], float] = {}
        self._lock = threading.Lock()

    def set(self, value: float, attributes: Mapping[str, str]) -> None:
        with self._lock:
            self._values[tuple(sorted(attributes.items()))] = float(value)

    def forget(self, keep: Callable[[str], bool]) -> int:
        """Removes the series whose ``tableNameWithType`` fails ``keep``; how many went."""
        with self._lock:
            gone = [k for k in self._values if not keep(dict(k).get("tableNameWithType", ""))]
            for key in gone:
                del self._values[key]
        return len(gone)

    def points(self) -> _Points:
        with self._lock:
            return _Points([_Point(dict(k), v) for k, v in self._values.items()])


_TABLE_GAUGES = {
    name: TableGauge(name)
    for name in (
        "taskPlanProgressionBlocked",
        "taskPlanInputsToProcess",
        "taskPlanInputsBeingProcessed",
        "taskPlanInputsProcessed",
        "activeTaskPlansCount",
        "taskPlansAbortingCount",
    )
}
# How often a controller asks the catalog which tables exist, to forget the gauges of dropped ones.
FORGET_EVERY_S = 60.0
_last_forget = 0.0


def forget_dropped_tables(table_names: Callable[[], Collection[str]], *, force: bool = False) -> int:
    """Removes this process's gauge series of tables that no longer exist (``table_names``: every table
    name with type in the catalog), at most every FORGET_EVERY_S unless ``force``; how many went. The
    orchestration poll calls it every poll, a controller's plan steps at most once a minute, so no process
    keeps a dropped table's series for long. A table created again gets fresh series."""
    global _last_forget
    now = time.monotonic()
    with _lock:
        if not force and now - _last_forget < FORGET_EVERY_S:
            return 0
        _last_forget = now
    existing = set(table_names())
    return sum(gauge.forget(existing.__contains__) for gauge in _TABLE_GAUGES.values())


class _OrchestrationCollector(Collector):
    """Exposes the OpenTelemetry instruments to prometheus_client under their documented (camelCase) names,
    every documented family on every scrape, with or without samples.

    OpenTelemetry lowercases instrument names (its exporter would print taskplanaborted_total), which
    would break the names operators alert on; this collector restores them."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader

    def collect(self) -> Iterable[Metric]:
        observed: dict[str, object] = {}
        data = self._reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    observed[metric.name.lower()] = metric.data
        for family in FAMILIES:
            exported = _poll_owner or family.name not in POLL_FAMILIES
            table_gauge = _TABLE_GAUGES.get(family.name)
            points = table_gauge.points() if table_gauge else observed.get(family.name.lower())
            yield _family(family, points if exported else None)


def _family(family: Family, data: object) -> Metric:
    points = getattr(data, "data_points", [])
    labels = sorted({k for p in points for k in p.attributes})
    result: CounterMetricFamily | GaugeMetricFamily
    if family.kind == "counter":
        result = CounterMetricFamily(family.name, family.description, labels=labels)
    else:
        result = GaugeMetricFamily(family.name, family.description, labels=labels)
    for point in points:
        result.add_metric([str(point.attributes.get(k, "")) for k in labels], point.value)
    return result


@dataclass(frozen=True)
class OrchestrationMetrics:
    task_plan_aborted: Counter
    orchestration_cycle_failure: Counter
    task_plan_progression_blocked: TableGauge
    scheduled_trigger_active_plan_conflict: Counter
    task_generation_failure_count: Counter
    task_plan_inputs_to_process: TableGauge
    task_plan_inputs_being_processed: TableGauge
    task_plan_inputs_processed: TableGauge
    active_task_plans_count: TableGauge
    task_plans_aborting_count: TableGauge
    task_plans_cleaned_up: Counter

    @staticmethod
    def attributes(table_name_with_type: str, task_type: str) -> dict[str, str]:
        return {"tableNameWithType": table_name_with_type, "taskType": task_type}


_metrics: OrchestrationMetrics | None = None


def metrics() -> OrchestrationMetrics:
    """The process's instruments, created (and registered for export) on first use."""
    global _metrics
    with _lock:
        if _metrics is None:
            reader = InMemoryMetricReader(
                preferred_temporality={SdkCounter: AggregationTemporality.CUMULATIVE}
            )
            meter = MeterProvider(metric_readers=[reader]).get_meter("taskplan")

            def counter(name: str) -> Counter:
                assert _BY_NAME[name].kind == "counter"
                return meter.create_counter(name, description=_BY_NAME[name].description)

            def gauge(name: str) -> TableGauge:
                assert _BY_NAME[name].kind == "gauge"
                return _TABLE_GAUGES[name]

            _metrics = OrchestrationMetrics(
                task_plan_aborted=counter("taskPlanAborted"),
                orchestration_cycle_failure=counter("orchestrationCycleFailure"),
                task_plan_progression_blocked=gauge("taskPlanProgressionBlocked"),
                scheduled_trigger_active_plan_conflict=counter("scheduledTriggerActivePlanConflict"),
                task_generation_failure_count=counter("taskGenerationFailureCount"),
                task_plan_inputs_to_process=gauge("taskPlanInputsToProcess"),
                task_plan_inputs_being_processed=gauge("taskPlanInputsBeingProcessed"),
                task_plan_inputs_processed=gauge("taskPlanInputsProcessed"),
                active_task_plans_count=gauge("activeTaskPlansCount"),
                task_plans_aborting_count=gauge("taskPlansAbortingCount"),
                task_plans_cleaned_up=counter("taskPlansCleanedUp"),
            )
            meter.create_observable_gauge(
                "orchestrationTimeSinceLastPollMs",
                callbacks=[_time_since_last_poll],
                description=_BY_NAME["orchestrationTimeSinceLastPollMs"].description,
            )
            REGISTRY.register(_OrchestrationCollector(reader))
        return _metrics


_last_poll: float | None = None


def set_last_poll(epoch_s: float) -> None:
    global _last_poll
    _last_poll = epoch_s


def _time_since_last_poll(_options: CallbackOptions) -> Iterable[Observation]:
    if _last_poll is not None:
        yield Observation((time.time() - _last_poll) * 1000)


def prometheus_text(scraped: Mapping[str, str | None] | None = None) -> bytes:
    """This process's metrics in Prometheus text format.

    ``scraped`` maps each merge target to the text it answered (None: it did not answer); its documented
    families are merged into this process's, the rest of it (its own process metrics) is left out, since
    those would clash with this process's of the same names."""
    metrics()  # every documented family is exported, even before the first measurement
    if scraped is None:
        return generate_latest(REGISTRY)
    return generate_latest(_Merged(scraped))


class _Merged(Collector):
    def __init__(self, scraped: Mapping[str, str | None]) -> None:
        self._scraped = scraped

    def collect(self) -> Iterable[Metric]:
        remote: dict[str, list[Metric]] = {}
        up = GaugeMetricFamily(
            MERGE_TARGET_UP,
            "1 if the merge target answered the scrape that built this answer, else 0",
            labels=["target"],
        )
        for target, text in self._scraped.items():
            families = _documented_families(text)
            up.add_metric([target], 0 if families is None else 1)
            for family in families or []:
                remote.setdefault(family.name, []).append(family)
        for family in REGISTRY.collect():
            if family.name in _BY_NAME:
                yield merge_families(_BY_NAME[family.name], [family, *remote.get(family.name, [])])
            else:
                yield family
        yield up


def _documented_families(text: str | None) -> list[Metric] | None:
    """The documented families of a target's answer (None: no answer, or not Prometheus text)."""
    if text is None:
        return None
    try:
        return [f for f in text_string_to_metric_families(text) if f.name in _BY_NAME]
    except ValueError:
        return None


def merge_families(family: Family, parts: Iterable[Metric]) -> Metric:
    """One family from several processes' exports of it: counters summed, gauges at their maximum."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for part in parts:
        if part.type != family.kind:
            continue  # a target exporting the name with another type is not one of ours
        for sample in part.samples:
            if family.kind == "counter" and not sample.name.endswith("_total"):
                continue  # _created timestamps are per process: no sum of them means anything
            key = (sample.name, tuple(sorted(sample.labels.items())))
            previous = values.get(key)
            if previous is None:
                values[key] = sample.value
            elif family.kind == "counter":
                values[key] = previous + sample.value
            else:
                values[key] = max(previous, sample.value)
    merged = Metric(family.name, family.description, family.kind)
    for (name, labels), value in sorted(values.items()):
        merged.add_sample(name, dict(labels), value)
    return merged


def metrics_url(host: str, port: int) -> str:
    """The scrape URL of an endpoint bound to host:port (a wildcard bind is scraped on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """A Prometheus scrape endpoint for a worker process."""
    metrics()
    start_http_server(port, addr=host)
