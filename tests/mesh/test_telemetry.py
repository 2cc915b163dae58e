"""The span processor the services export through."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mesh.telemetry import EXPORT_BATCH_SPANS, span_processor


class BatchRecorder(SpanExporter):
    def __init__(self) -> None:
        self.batches: list[int] = []

    def export(self, spans) -> SpanExportResult:
        self.batches.append(len(spans))
        return SpanExportResult.SUCCESS


def _export(count: int) -> list[int]:
    recorder = BatchRecorder()
    provider = TracerProvider()
    provider.add_span_processor(span_processor(recorder))
    tracer = provider.get_tracer(__name__)
    for n in range(count):
        with tracer.start_as_current_span("item", attributes={"n": n}):
            pass
    provider.force_flush()
    provider.shutdown()
    return recorder.batches


def test_spans_are_exported_in_small_batches(monkeypatch):
    monkeypatch.delenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", raising=False)
    batches = _export(200)
    assert sum(batches) == 200
    assert max(batches) <= EXPORT_BATCH_SPANS


def test_the_standard_variable_sets_the_batch_size(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200")
    batches = _export(200)
    assert sum(batches) == 200
    assert max(batches) > EXPORT_BATCH_SPANS
