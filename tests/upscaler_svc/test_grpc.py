"""End to end over gRPC: a real Upscaler server, a real Janitor, SeaweedFS S3 and Valkey, sources served by
a local HTTP server. Also the status codes of bad requests, deadlines, and the process's SIGTERM drain."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.embedded import free_port
from mesh.healthcheck import check
from mesh.media import probe
from mesh.storage import ObjectStore
from mesh.v1 import common_pb2, upscaler_pb2, upscaler_pb2_grpc
from tests.upscaler_svc.conftest import CLIP_14_985, CLIP_BUSY, ffmpeg_children, truncated_clip
from upscaler_svc.config import UpscalerSettings
from upscaler_svc.server import UpscalerServer

STAGE_ORDER = ["queued", "fetch", "probe", "upscale", "encode", "verify", "upload", "schedule"]


@pytest.fixture()
async def upscaler(janitor_address, s3_settings, weight_cache, tmp_path):
    settings = UpscalerSettings(host="127.0.0.1", port=0, allow_loopback_sources=True,
                                janitor_addr=janitor_address, cpu_backend="torch",
                                cache_dir=weight_cache.cache_dir, x265_preset="ultrafast",
                                delete_after_seconds=2, presign_seconds=600, work_dir=tmp_path,
                                drain_seconds=1)
    server = UpscalerServer(settings, s3_settings)
    port = await server.bind()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield server, channel
    await channel.close()
    await server.stop(grace=1)


async def _health(channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="mesh.v1.Upscaler"), timeout=5)
    return reply.status


async def test_stream_progress_then_result_then_scheduled_deletion(upscaler, http_root, tiny_clips,
                                                                     s3_settings, tmp_path):
    server, channel = upscaler
    assert await _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    await server.ready()
    assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING

    root, base = http_root
    source = shutil.copy(tiny_clips(CLIP_14_985, frames=8, width=96), root / "input.mp4")
    call = upscaler_pb2_grpc.UpscalerStub(channel).Upscale(
        upscaler_pb2.UpscaleRequest(source_url=f"{base}/input.mp4", job_id="e2e-sd24k",
                                    task_type=upscaler_pb2.UPSCALE_TASK_TYPE_SD24K), timeout=120)
    events, arrivals = [], []
    async for event in call:
        events.append(event)
        arrivals.append(time.monotonic())

    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[-1] == "result" and kinds.count("result") == 1 and set(kinds[:-1]) == {"progress"}
    stages = [event.progress.stage for event in events[:-1]]
    seen = [stage for i, stage in enumerate(stages) if i == 0 or stages[i - 1] != stage]
    assert {"fetch", "upscale", "upload"} <= set(seen)
    assert seen == sorted(seen, key=STAGE_ORDER.index), f"stages out of order: {seen}"
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert max(gaps) <= 1.0, "progress at least once a second"
    frames = [event.progress for event in events[:-1] if event.progress.stage == "upscale"]
    assert frames[-1].total == 8 and frames[-1].unit == "frames"

    result = events[-1].result
    src = probe(source)
    assert (result.media.width, result.media.height) == (src.width * 4, src.height * 4)
    assert (result.media.fps_num, result.media.fps_den) == (15000, 1001)
    assert result.media.frame_count == 8 and result.media.codec == "hevc"
    assert result.engine == "cpu/torch" and result.model == "realesr-animevideov3"
    assert result.gates and all(gate.passed for gate in result.gates)
    assert {timing.stage for timing in result.timings} >= {"fetch", "upscale", "upload"}
    assert result.output.bucket == s3_settings.bucket
    assert result.output.object_key.startswith("upscaled/e2e-sd24k/")

    downloaded = tmp_path / "downloaded.mp4"
    reply = httpx.get(result.output.presigned_url, timeout=10)
    assert reply.status_code == 200
    downloaded.write_bytes(reply.content)
    facts = probe(downloaded)
    assert (facts.width, facts.height) == (src.width * 4, src.height * 4)
    assert (facts.frame_count, facts.codec) == (8, "hevc")

    delete_at = result.output.delete_at.ToDatetime(tzinfo=dt.UTC)
    assert 0 < (delete_at - dt.datetime.now(dt.UTC)).total_seconds() <= 3
    store = ObjectStore(s3_settings)
    deadline = time.monotonic() + 20
    while store.exists(result.output.object_key) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not store.exists(result.output.object_key), "the janitor deletes the object when it comes due"
    assert httpx.get(result.output.presigned_url, timeout=10).status_code == 404


async def test_bad_requests_map_to_status_codes(upscaler, http_root, tiny_clips, s3_settings):
    server, channel = upscaler
    await server.ready()
    root, base = http_root
    (root / "notes.mp4").write_text("not a video\n" * 10)
    truncated_clip(tiny_clips, root / "truncated.mp4")
    stub = upscaler_pb2_grpc.UpscalerStub(channel)
    cases = [
        (upscaler_pb2.UpscaleRequest(source_url=f"{base}/x.mp4", scale=2, codec=common_pb2.VIDEO_CODEC_H264),
         grpc.StatusCode.INVALID_ARGUMENT),
        (upscaler_pb2.UpscaleRequest(source_url=f"{base}/x.mp4", scale=3), grpc.StatusCode.INVALID_ARGUMENT),
        (upscaler_pb2.UpscaleRequest(source_url="", scale=2), grpc.StatusCode.INVALID_ARGUMENT),
        (upscaler_pb2.UpscaleRequest(source_url=f"{base}/missing.mp4", scale=2), grpc.StatusCode.NOT_FOUND),
        (upscaler_pb2.UpscaleRequest(source_url=f"{base}/notes.mp4", scale=2),
         grpc.StatusCode.INVALID_ARGUMENT),
        (upscaler_pb2.UpscaleRequest(source_url=f"{base}/truncated.mp4", scale=2),
         grpc.StatusCode.FAILED_PRECONDITION),
    ]
    for request, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Upscale(request, timeout=30):
                pass
        assert caught.value.code() == code, (request, caught.value.details())
        assert caught.value.details()
    assert list(ObjectStore(s3_settings).client.list_objects(s3_settings.bucket, recursive=True)) == [], \
        "nothing is uploaded for a failed call"


async def test_deadline_stops_the_job_within_a_second(upscaler, http_root, tiny_clips):
    server, channel = upscaler
    await server.ready()
    root, base = http_root
    shutil.copy(tiny_clips(CLIP_BUSY, frames=60, width=128), root / "long.mp4")
    call = upscaler_pb2_grpc.UpscalerStub(channel).Upscale(
        upscaler_pb2.UpscaleRequest(source_url=f"{base}/long.mp4", scale=4), timeout=2.0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    stopped_by = time.monotonic() + 1.0
    while (server.service.queue.pending or ffmpeg_children()) and time.monotonic() < stopped_by:
        await asyncio.sleep(0.05)
    assert server.service.queue.pending == 0 and ffmpeg_children() == []


def test_process_turns_serving_after_loading_and_drains_on_sigterm(s3_server, s3_settings, weight_cache):
    port = free_port()
    env = {**os.environ, **s3_server.env(), "S3_BUCKET": s3_settings.bucket, "UPSCALER_HOST": "127.0.0.1",
           "UPSCALER_PORT": str(port), "UPSCALER_CACHE_DIR": str(weight_cache.cache_dir),
           "UPSCALER_CPU_BACKEND": "torch", "UPSCALER_DRAIN_SECONDS": "1", "JANITOR_ADDR": "127.0.0.1:1",
           "OTEL_SDK_DISABLED": "true"}
    process = subprocess.Popen([sys.executable, "-m", "upscaler_svc"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while check(f"127.0.0.1:{port}", "mesh.v1.Upscaler", timeout=1) != "SERVING":
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "never became SERVING"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
