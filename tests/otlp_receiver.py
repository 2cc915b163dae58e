"""An in-process OTLP/gRPC receiver: services in other processes export real spans and metrics to it."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue


def _value(attribute: KeyValue) -> object:
    kind = attribute.value.WhichOneof("value")
    return getattr(attribute.value, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object] = field(hash=False)
    status_code: int
    status_message: str
    events: tuple[str, ...]


class _MetricsCollector(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink: set[tuple[str, str]]) -> None:
        self._sink = sink

    def Export(self, request, context):  # noqa: N802 - gRPC method name
        for resource_metrics in request.resource_metrics:
            resource = {kv.key: _value(kv) for kv in resource_metrics.resource.attributes}
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    self._sink.add((str(resource.get("service.name", "")), metric.name))
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpTraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects every exported span, and (service, metric name) pairs; `endpoint` goes into
    OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.metrics: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsCollector(self.metrics), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request, context):  # noqa: N802 - gRPC method name
        received = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(
                        service=str(resource.get("service.name", "")), name=span.name,
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={kv.key: _value(kv) for kv in span.attributes},
                        status_code=span.status.code, status_message=span.status.message,
                        events=tuple(event.name for event in span.events)))
        with self._lock:
            self.spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, predicate, timeout: float = 20.0) -> list[ReceivedSpan]:
        """Wait until `predicate(spans)` is true; return the spans seen."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.2)

    def start(self) -> OtlpTraceReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)
