"""OpenTelemetry set-up from the standard OTEL_* variables.

Traces and metrics are exported over OTLP/gRPC only when OTEL_EXPORTER_OTLP_ENDPOINT (or the
per-signal variant) is set; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured by the SDK.
gRPC server calls are instrumented by the OTel interceptor, health checks excluded; outgoing calls open
their CLIENT span by hand (`client_span`, or a span of the caller's with `rpc_attributes` and
`outgoing_metadata`): the aio client interceptor wraps every call in extra tasks, ~0.45 ms per call measured
here, and the gateway fans out up to ten calls per synapse.

Spans are exported in batches of 32 (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` overrides): the exporter encodes a
batch in Python while holding the GIL, ~12 ms for the SDK's default of 512 here, and a request in flight waits
for it. Batches of 32 cut that wait to under a millisecond for about the same CPU in all.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer, filters
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, Status, StatusCode

_NOT_HEALTH = filters.negate(filters.service_name("grpc.health.v1.Health"))
EXPORT_BATCH_SPANS = 32
_tracer = trace.get_tracer("vidaio-mesh")
_meter = metrics.get_meter("vidaio-mesh")
_stage_seconds = _meter.create_histogram("mesh.stage.duration", unit="s", description="wall time of a job stage")
_frames_per_second = _meter.create_histogram("mesh.frames_per_second", unit="{frame}/s",
                                             description="frame rate of a counting stage")
_jobs = _meter.create_counter("mesh.jobs", description="finished jobs by outcome")
_jobs_active = _meter.create_up_down_counter("mesh.jobs.active", description="jobs queued or running")


def _exports(signal: str) -> bool:
    """OTLP export for TRACES or METRICS: an endpoint is configured and OTEL_<signal>_EXPORTER is not `none`."""
    if os.environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
                or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def shutdown(self) -> None:
        """Flush and stop exporters so the last spans of a stopping process are not lost."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_current: Telemetry | None = None


def init_telemetry(service: str) -> Telemetry:
    """Install tracer and meter providers and gRPC instrumentation once per process."""
    global _current
    if _current is not None:
        return _current
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service),
                                "service.namespace": "vidaio-mesh"})
    tracer_provider = TracerProvider(resource=resource)
    readers = []
    if not disabled and _exports("TRACES"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(span_processor(OTLPSpanExporter()))
    if not disabled and _exports("METRICS"):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    GrpcAioInstrumentorServer(filter_=_NOT_HEALTH).instrument()
    _current = Telemetry(tracer_provider, meter_provider)
    return _current


def span_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    """The batch processor every service exports through: small batches unless the environment sets a size."""
    configured = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in os.environ
    return BatchSpanProcessor(exporter, max_export_batch_size=None if configured else EXPORT_BATCH_SPANS)


def rpc_attributes(method: str) -> dict[str, str]:
    """Semantic-convention attributes of a call to `method` ("/package.Service/Method")."""
    service, name = method.strip("/").split("/", 1)
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata, so the server's span joins this trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


@contextlib.contextmanager
def client_span(method: str) -> Iterator[tuple[tuple[str, str], ...]]:
    """A CLIENT span around one outgoing call to `method` ("/package.Service/Method"), yielding the metadata
    that carries its context to the server. A failed call records its gRPC status code."""
    with _tracer.start_as_current_span(method, kind=trace.SpanKind.CLIENT,
                                       attributes=rpc_attributes(method)) as span:
        try:
            yield outgoing_metadata()
        except grpc.aio.AioRpcError as exc:
            span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
            raise
        span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])


class JobTelemetry:
    """Telemetry of one streaming job, derived from its progress stream: a child span per stage
    (`stage.<name>`) of the current span with each update as a span event, a failure as the open stage's
    error status, and the metrics every service reports (stage durations, frames/s, jobs by outcome, jobs
    in flight)."""

    def __init__(self) -> None:
        self._parent = otel_context.get_current()
        self._span: Span | None = None
        self._stage = ""
        self._stage_started = 0.0
        self._frame_rate = 0.0
        self._outcome = ""
        _jobs_active.add(1)

    def progress(self, stage: str, done: int = 0, total: int = 0, unit: str = "", message: str = "",
                 rate: float = 0.0) -> None:
        if stage != self._stage:
            self._end_stage()
            self._stage = stage
            if stage:
                self._stage_started = time.monotonic()
                self._span = _tracer.start_span(f"stage.{stage}", context=self._parent,
                                                attributes={"mesh.stage": stage})
        if unit == "frames" and rate > 0:
            self._frame_rate = rate
        if self._span is not None:
            self._span.add_event("progress", {"mesh.done": done, "mesh.total": total, "mesh.unit": unit,
                                              "mesh.message": message})

    def fail(self, exc: BaseException) -> None:
        """Mark the open stage as failed with the reason, end it, and count the job by its error."""
        if self._span is not None:
            self._span.record_exception(exc)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._finish(getattr(exc, "status", None) or type(exc).__name__)

    def close(self) -> None:
        """End the job; one that did not fail counts as `ok`."""
        self._finish("ok")

    def _finish(self, outcome: str) -> None:
        self._end_stage()
        if not self._outcome:
            self._outcome = outcome
            _jobs.add(1, {"mesh.outcome": outcome})
            _jobs_active.add(-1)

    def _end_stage(self) -> None:
        if self._span is None:
            return
        attributes = {"mesh.stage": self._stage}
        _stage_seconds.record(time.monotonic() - self._stage_started, attributes)
        if self._frame_rate:
            _frames_per_second.record(self._frame_rate, attributes)
        self._span.end()
        self._span, self._stage, self._frame_rate = None, "", 0.0
