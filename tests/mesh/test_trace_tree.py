"""One trace per synapse across real processes: the gateway, upscaler, compressor and janitor run as separate
processes exporting OTLP to an in-process receiver, and a real validator round is played against them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.otlp_receiver import OtlpTraceReceiver, ReceivedSpan
from vidaio_cli.mesh_stack import EmbeddedMesh

VIDAIO_MESH = Path(sys.executable).parent / "vidaio-mesh"
GATEWAY = "miner-gateway"  # the gateway's default OTEL_SERVICE_NAME
ROUTES = {"VideoUpscalingProtocol": ("upscaler", "/mesh.v1.Upscaler/Upscale",
                                     {"fetch", "probe", "upscale", "verify", "upload", "schedule"}),
          "VideoCompressionProtocol": ("compressor", "/mesh.v1.Compressor/Compress",
                                       {"fetch", "probe", "search", "encode", "verify", "upload", "schedule"})}


def _round_is_exported(spans: list[ReceivedSpan]) -> bool:
    roots = [s for s in spans if s.service == GATEWAY and s.name.startswith("synapse Video")]
    schedules = [s for s in spans if s.service == "janitor" and s.name.endswith("/ScheduleDeletion")]
    return len(roots) >= 2 and len(schedules) >= 2


@pytest.mark.slow
def test_each_synapse_is_one_trace_through_gateway_services_and_janitor(tmp_path: Path) -> None:
    receiver = OtlpTraceReceiver().start()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
    try:
        with EmbeddedMesh(tmp_path / "mesh", extra_env=otel) as handle:
            demo = subprocess.run(
                [str(VIDAIO_MESH), "demo", "--use-running", "--mesh-dir", str(handle.root), "--report",
                 str(tmp_path / "report.json"), "--seconds", "0.4", "--upscaling-items", "1",
                 "--compression-items", "1", "--task-types", "SD24K", "--codecs", "hevc", "--codec-modes", "CRF"],
                cwd=REPO_ROOT, env={**os.environ, "OTEL_SDK_DISABLED": "true"}, capture_output=True, text=True,
                timeout=400, check=False)
            assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-2000:]
            spans = receiver.wait_for(_round_is_exported, timeout=30)
    finally:
        receiver.stop()

    for route, (service, rpc, stages) in ROUTES.items():
        root = next(s for s in spans if s.service == GATEWAY and s.name == f"synapse {route}")
        assert root.attributes.get("mesh.route") == route
        trace = {s.span_id: s for s in spans if s.trace_id == root.trace_id}
        assert {s.service for s in trace.values()} == {GATEWAY, service, "janitor"}, route
        orphans = [s.name for s in trace.values() if s.parent_span_id and s.parent_span_id not in trace]
        assert not orphans, f"{route}: spans whose parent is not in the trace: {orphans}"
        assert len([s for s in trace.values() if not s.parent_span_id]) == 1, "one root span per synapse"

        server = next(s for s in trace.values() if s.service == service and s.name == rpc)
        client = trace[server.parent_span_id]
        assert client.service == GATEWAY and client.name == "mesh.item" and client.parent_span_id == root.span_id
        assert f"/{client.attributes['rpc.service']}/{client.attributes['rpc.method']}" == rpc
        stage_spans = {s.name.removeprefix("stage."): s for s in trace.values()
                       if s.service == service and s.name.startswith("stage.")}
        assert stages <= stage_spans.keys(), f"{route}: stages {sorted(stage_spans)}"
        assert all(s.parent_span_id == server.span_id for s in stage_spans.values())
        assert "progress" in stage_spans["upload"].events

        janitor = next(s for s in trace.values() if s.service == "janitor" and s.name.endswith("/ScheduleDeletion"))
        assert trace[janitor.parent_span_id].service == service

    for service in ("upscaler", "compressor"):
        assert {(service, name) for name in ("mesh.stage.duration", "mesh.jobs", "mesh.jobs.active")} <= \
            receiver.metrics, sorted(receiver.metrics)
    assert ("upscaler", "mesh.frames_per_second") in receiver.metrics
    assert ("janitor", "janitor.deletion.lag") in receiver.metrics or ("janitor", "janitor.pending") in receiver.metrics
