"""Controller-side orchestration metrics (OpenTelemetry SDK, exported in Prometheus text format).

Every instrument carries the attributes ``tableNameWithType`` and ``taskType``. Prometheus names counters
with a ``_total`` suffix: ``taskPlanAborted`` is scraped as ``taskPlanAborted_total``. Each process (API,
controller worker) exports what it observed; aggregate across processes in dashboards, as the StarTree
documentation advises for controllers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Counter, Meter, Observation
from opentelemetry.metrics import _Gauge as Gauge  # the API exports the synchronous gauge type privately
from opentelemetry.sdk.metrics import Counter as SdkCounter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, Sum
from prometheus_client import REGISTRY, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The OpenTelemetry meter provider may be set up once per process; API and workers share this one.
_lock = threading.RLock()
_provider: MeterProvider | None = None


# The documented metric names. OpenTelemetry keeps instrument names lowercased; export them as documented.
DOCUMENTED_NAMES = {
    name.lower(): name
    for name in (
        "taskPlanAborted",
        "orchestrationCycleFailure",
        "taskPlanProgressionBlocked",
        "scheduledTriggerActivePlanConflict",
        "taskGenerationFailureCount",
        "taskPlanInputsToProcess",
        "taskPlanInputsBeingProcessed",
        "taskPlanInputsProcessed",
        "activeTaskPlansCount",
        "taskPlansAbortingCount",
        "orchestrationTimeSinceLastPollMs",
        "taskPlansCleanedUp",
    )
}


class _OrchestrationCollector(Collector):
    """Exposes the OpenTelemetry instruments to prometheus_client under their documented (camelCase) names.

    OpenTelemetry lowercases instrument names (its exporter would print taskplanaborted_total), which
    would break the names operators alert on; this collector restores them."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader

    def collect(self) -> Iterable[Metric]:
        data = self._reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    name = DOCUMENTED_NAMES.get(metric.name, metric.name)
                    yield from _families(name, metric.description or "", metric.data)


def _families(name: str, description: str, data: object) -> Iterable[Metric]:
    points = getattr(data, "data_points", [])
    labels = sorted({k for p in points for k in p.attributes})
    family: CounterMetricFamily | GaugeMetricFamily
    if isinstance(data, Sum) and data.is_monotonic:
        family = CounterMetricFamily(name, description, labels=labels)
    else:
        family = GaugeMetricFamily(name, description, labels=labels)
    for point in points:
        family.add_metric([str(point.attributes.get(k, "")) for k in labels], point.value)
    yield family


def _meter() -> Meter:
    global _provider
    with _lock:
        if _provider is None:
            reader = InMemoryMetricReader(
                preferred_temporality={SdkCounter: AggregationTemporality.CUMULATIVE}
            )
            _provider = MeterProvider(metric_readers=[reader])
            REGISTRY.register(_OrchestrationCollector(reader))
        return _provider.get_meter("taskplan")


@dataclass(frozen=True)
class OrchestrationMetrics:
    task_plan_aborted: Counter
    orchestration_cycle_failure: Counter
    task_plan_progression_blocked: Gauge
    scheduled_trigger_active_plan_conflict: Counter
    task_generation_failure_count: Counter
    task_plan_inputs_to_process: Gauge
    task_plan_inputs_being_processed: Gauge
    task_plan_inputs_processed: Gauge
    active_task_plans_count: Gauge
    task_plans_aborting_count: Gauge
    task_plans_cleaned_up: Counter

    @staticmethod
    def attributes(table_name_with_type: str, task_type: str) -> dict[str, str]:
        return {"tableNameWithType": table_name_with_type, "taskType": task_type}


_metrics: OrchestrationMetrics | None = None


def metrics() -> OrchestrationMetrics:
    """The process's instruments, created on first use."""
    global _metrics
    with _lock:
        if _metrics is None:
            meter = _meter()
            _metrics = OrchestrationMetrics(
                task_plan_aborted=meter.create_counter(
                    "taskPlanAborted",
                    description="plans aborted by a failure-threshold breach or their generator",
                ),
                orchestration_cycle_failure=meter.create_counter(
                    "orchestrationCycleFailure", description="exceptions while progressing a plan"
                ),
                task_plan_progression_blocked=meter.create_gauge(
                    "taskPlanProgressionBlocked",
                    description="1 while a plan's progression is blocked, else 0",
                ),
                scheduled_trigger_active_plan_conflict=meter.create_counter(
                    "scheduledTriggerActivePlanConflict",
                    description="scheduled triggers skipped because a plan was already active",
                ),
                task_generation_failure_count=meter.create_counter(
                    "taskGenerationFailureCount", description="task generation failures"
                ),
                task_plan_inputs_to_process=meter.create_gauge(
                    "taskPlanInputsToProcess", description="input units a plan has to process in all"
                ),
                task_plan_inputs_being_processed=meter.create_gauge(
                    "taskPlanInputsBeingProcessed", description="input units in the running batch"
                ),
                task_plan_inputs_processed=meter.create_gauge(
                    "taskPlanInputsProcessed", description="input units processed so far"
                ),
                active_task_plans_count=meter.create_gauge(
                    "activeTaskPlansCount", description="ACTIVE plans this controller progresses"
                ),
                task_plans_aborting_count=meter.create_gauge(
                    "taskPlansAbortingCount", description="plans in ABORTING, waiting for their batch"
                ),
                task_plans_cleaned_up=meter.create_counter(
                    "taskPlansCleanedUp",
                    description="executions removed by the cleanup sweep (reason: orphan, retention)",
                ),
            )
            meter.create_observable_gauge(
                "orchestrationTimeSinceLastPollMs",
                callbacks=[_time_since_last_poll],
                description="time since the orchestration poll last ran; rising means it stalled",
            )
        return _metrics


_last_poll: float | None = None


def set_last_poll(epoch_s: float) -> None:
    global _last_poll
    _last_poll = epoch_s


def _time_since_last_poll(_options: CallbackOptions) -> Iterable[Observation]:
    if _last_poll is not None:
        yield Observation((time.time() - _last_poll) * 1000)


def prometheus_text() -> bytes:
    _meter()  # make sure the exporter is registered, even before the first measurement
    return generate_latest(REGISTRY)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """A Prometheus scrape endpoint for a worker process."""
    _meter()
    start_http_server(port, addr=host)
