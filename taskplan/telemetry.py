"""Tracing and Temporal SDK metrics, both off unless configured.

- ``otel.exporter.otlp.endpoint`` (or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``), e.g.
  ``http://127.0.0.1:4318``: OpenTelemetry traces over OTLP/HTTP. Every Temporal client gets Temporal's
  tracing interceptor, so one trace runs from an API request (FastAPI traces each request itself) through
  the plan and batch workflows to the generator and executor activities.
- ``temporal.sdk.metricsPort``: the Temporal SDK's own metrics (workflow and activity task latencies,
  polls, slots, request failures) in Prometheus format on ``taskplan.metrics.host`` (default 127.0.0.1,
  as the worker's own metrics endpoint; ``0.0.0.0`` to be scraped from another host) and that port.
"""

from __future__ import annotations

import os
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.client import Interceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from taskplan.settings import Settings

_lock = threading.Lock()
_configured = False
_runtimes: dict[int, Runtime] = {}


def otlp_endpoint(settings: Settings) -> str | None:
    return settings.property("otel.exporter.otlp.endpoint") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")


def install_tracer_provider(exporter: SpanExporter, service_name: str = "taskplan") -> None:
    """Send this process's spans to ``exporter`` (once per process)."""
    global _configured
    with _lock:
        if _configured:
            return
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _configured = True


def tracing_enabled(settings: Settings) -> bool:
    endpoint = otlp_endpoint(settings)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        install_tracer_provider(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"))
    return _configured


def client_interceptors(settings: Settings) -> list[Interceptor]:
    if not tracing_enabled(settings):
        return []
    # Imported only with tracing on: it imports temporalio.worker, which the API process (and `taskplan
    # run`) would otherwise load for nothing (a tenth of the API's start-up CPU).
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def sdk_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting SDK metrics, when ``temporal.sdk.metricsPort`` is set."""
    port = int(settings.property("temporal.sdk.metricsPort") or 0)
    if not port:
        return None
    with _lock:
        if port not in _runtimes:
            host = settings.sdk_metrics_host or settings.metrics_host
            bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            telemetry = TelemetryConfig(metrics=PrometheusConfig(bind_address=bind))
            _runtimes[port] = Runtime(telemetry=telemetry)
        return _runtimes[port]
