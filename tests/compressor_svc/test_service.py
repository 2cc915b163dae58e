"""The compressor over real gRPC with a real janitor, SeaweedFS S3 and Valkey; sources served over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import http.server
import itertools
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from compressor_svc.config import CompressorSettings
from compressor_svc.server import CompressorServer
from mesh import lanes
from mesh.config import S3Settings
from mesh.media import probe
from mesh.scheduling import ORGANIC
from mesh.storage import ObjectStore
from mesh.v1 import common_pb2, compressor_pb2, compressor_pb2_grpc
from mesh.vmaf import measure
from tests.compressor_svc.test_pipeline import ffmpeg_children, validator_style


class SourceHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a directory; /stall answers headers and then never finishes the body."""

    release = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", str(10 << 20))
            self.end_headers()
            self.wfile.write(b"\0" * 1024)
            self.wfile.flush()
            self.release.wait(30)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def source_dir(clips_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    validator_style(clips_dir, folder / "two-scenes.mp4", frames_each=24, size="192x108")
    (folder / "garbage.mp4").write_bytes(b"definitely not a video" * 50)
    return folder


@pytest.fixture(scope="module")
def http_base(source_dir: Path):
    handler = functools.partial(SourceHandler, directory=str(source_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    SourceHandler.release.set()
    server.shutdown()
    thread.join(5)


def settings_for(janitor_address: str, work_dir: Path, **overrides: object) -> CompressorSettings:
    values: dict[str, object] = dict(host="127.0.0.1", port=0, drain_seconds=1, janitor_addr=janitor_address,
                                     allow_loopback_sources=True, work_dir=work_dir, concurrency=1,
                                     queue_size=0)
    values.update(overrides)
    return CompressorSettings(**values)


@pytest.fixture()
async def compressor(janitor_address: str, s3_settings: S3Settings, tmp_path: Path):
    server = CompressorServer(settings_for(janitor_address, tmp_path / "work"), s3_settings)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield server, channel
    await channel.close()
    await server.stop(grace=1)


async def collect(stub, request, timeout: float) -> list[compressor_pb2.CompressEvent]:
    return [event async for event in stub.Compress(request, timeout=timeout)]


async def test_compress_streams_progress_then_a_url_to_the_verified_file(
        compressor, http_base: str, source_dir: Path, s3_settings: S3Settings):
    server, channel = compressor
    health = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="mesh.v1.Compressor"), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = compressor_pb2_grpc.CompressorStub(channel)
    request = compressor_pb2.CompressRequest(source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=89,
                                             target_codec=common_pb2.VIDEO_CODEC_AV1, job_id="e2e-av1")
    arrivals: list[float] = []
    events = []
    async for event in stub.Compress(request, timeout=120):
        arrivals.append(time.monotonic())
        events.append(event)
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[-1] == "result" and kinds.count("result") == 1 and kinds[0] == "progress"
    stages = {event.progress.stage for event in events if event.HasField("progress")}
    assert stages >= {"queued", "fetch", "search", "verify", "upload"}
    assert max(b - a for a, b in itertools.pairwise(arrivals)) <= 1.5, "progress at least once a second"

    result = events[-1].result
    assert result.meets_threshold and result.vmaf_neg >= 89 and result.encoder
    assert result.output.object_key.startswith("processing/compression/e2e-av1/")
    assert {g.name for g in result.gates} >= {"codec", "frame_count", "compression_ratio", "vmaf_neg_floor"}
    assert all(gate.passed for gate in result.gates)
    delete_at = result.output.delete_at.ToDatetime(tzinfo=dt.UTC)
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=s3_settings.presign_seconds + 600)
    assert abs((delete_at - expected).total_seconds()) < 60, "the janitor scheduled the deletion"
    assert ObjectStore(s3_settings).exists(result.output.object_key)

    async with httpx.AsyncClient() as client:
        response = await client.get(result.output.presigned_url, timeout=30)
    assert response.status_code == 200
    downloaded = source_dir.parent / "downloaded.mp4"
    downloaded.write_bytes(response.content)
    facts, source = probe(downloaded), probe(source_dir / "two-scenes.mp4")
    assert facts.size_bytes == result.media.size_bytes and facts.codec == "av1"
    assert (facts.width, facts.height, facts.frame_count) == (source.width, source.height, source.frame_count)
    scores = await measure(downloaded, source_dir / "two-scenes.mp4")
    assert scores.vmaf_neg == pytest.approx(result.vmaf_neg, abs=1e-6) and scores.vmaf_neg >= 89
    assert not any(server.settings.work_dir.iterdir()), "the job's temp files are gone"


async def test_bad_requests_get_clear_statuses(compressor, http_base: str):
    _, channel = compressor
    stub = compressor_pb2_grpc.CompressorStub(channel)
    cases = [(dict(source_url=""), grpc.StatusCode.INVALID_ARGUMENT),
             (dict(source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=120),
              grpc.StatusCode.INVALID_ARGUMENT),
             (dict(source_url=f"{http_base}/missing.mp4"), grpc.StatusCode.NOT_FOUND),
             (dict(source_url=f"{http_base}/garbage.mp4"), grpc.StatusCode.INVALID_ARGUMENT),
             (dict(source_url="ftp://example.com/a.mp4"), grpc.StatusCode.INVALID_ARGUMENT)]
    for fields, code in cases:
        request = compressor_pb2.CompressRequest(**{"vmaf_threshold": 89, **fields})
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await collect(stub, request, timeout=30)
        assert failure.value.code() == code, (fields, failure.value.details())
        assert failure.value.details()


async def test_private_sources_are_refused_unless_allowed(janitor_address: str, s3_settings: S3Settings,
                                                          tmp_path: Path, http_base: str):
    server = CompressorServer(settings_for(janitor_address, tmp_path / "work", allow_loopback_sources=False),
                              s3_settings)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = compressor_pb2_grpc.CompressorStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await collect(stub, compressor_pb2.CompressRequest(
                    source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=89), timeout=30)
            assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(grace=1)


async def test_full_queue_is_busy_and_cancel_frees_the_slot(compressor, http_base: str):
    _, channel = compressor
    stub = compressor_pb2_grpc.CompressorStub(channel)
    stalled = stub.Compress(compressor_pb2.CompressRequest(source_url=f"{http_base}/stall",
                                                           vmaf_threshold=89), timeout=60)
    first = await stalled.read()
    assert first.HasField("progress")
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await collect(stub, compressor_pb2.CompressRequest(source_url=f"{http_base}/two-scenes.mp4",
                                                           vmaf_threshold=89), timeout=30)
    assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    stalled.cancel()
    for _ in range(50):
        try:
            await collect(stub, compressor_pb2.CompressRequest(source_url=f"{http_base}/missing.mp4",
                                                               vmaf_threshold=89), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                break
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        time.sleep(0.05)
    else:
        pytest.fail("the cancelled job never released its slot")


async def test_short_deadline_fails_fast_without_leftovers(compressor, http_base: str):
    _, channel = compressor
    stub = compressor_pb2_grpc.CompressorStub(channel)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await collect(stub, compressor_pb2.CompressRequest(source_url=f"{http_base}/two-scenes.mp4",
                                                           vmaf_threshold=89), timeout=2.5)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3.0
    assert not ffmpeg_children()


async def test_tight_deadline_still_returns_a_result_within_it(compressor, http_base: str):
    _, channel = compressor
    stub = compressor_pb2_grpc.CompressorStub(channel)
    started = time.monotonic()
    events = await collect(stub, compressor_pb2.CompressRequest(
        source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=85,
        target_codec=common_pb2.VIDEO_CODEC_HEVC), timeout=9)
    assert time.monotonic() - started < 9
    result = events[-1].result
    assert result.output.presigned_url and result.media.codec == "hevc"
    assert result.media.frame_count == result.source.frame_count


async def test_an_output_that_fails_a_gate_is_refused_and_never_uploaded(compressor, http_base: str,
                                                                         s3_settings: S3Settings):
    """T=100 under a 0.02 Mbit/s VBR target is out of reach (VMAF-NEG floor, ratio or bitrate cap fails): a
    file the validator would score zero must not be uploaded."""
    _, channel = compressor
    stub = compressor_pb2_grpc.CompressorStub(channel)
    request = compressor_pb2.CompressRequest(
        source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=100, target_codec=common_pb2.VIDEO_CODEC_HEVC,
        codec_mode=compressor_pb2.CODEC_MODE_VBR, target_bitrate_mbps=0.02, job_id="gate-fail")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await collect(stub, request, timeout=120)
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION, failure.value.details()
    details = failure.value.details()
    assert "nothing was uploaded" in details
    assert any(f"{gate}:" in details for gate in ("vmaf_neg_floor", "compression_ratio", "bitrate_cap")), details
    store = ObjectStore(s3_settings)
    assert not list(store.client.list_objects(store.bucket, prefix="processing/compression/gate-fail/",
                                              recursive=True))


async def test_cancel_during_upload_leaves_no_object_behind(compressor, http_base: str, s3_settings: S3Settings):
    """The caller goes away while the upload thread (which cannot be interrupted) is still writing: the
    object is deleted once the thread is done — the same guarantee the upscaler gives."""
    server, channel = compressor
    store = server.service.publisher.store
    real_upload, uploaded, finished = store.upload, threading.Event(), threading.Event()

    def slow_upload(path: Path, key: str, *args: object, **kwargs: object) -> None:
        """The object is in the bucket, but the thread is still busy (the last part in flight)."""
        try:
            real_upload(path, key, *args, **kwargs)
            uploaded.set()
            time.sleep(1.5)
        finally:
            finished.set()

    store.upload = slow_upload
    stub = compressor_pb2_grpc.CompressorStub(channel)
    call = stub.Compress(compressor_pb2.CompressRequest(source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=85,
                                                        job_id="cancel-upload"), timeout=120)
    async for event in call:
        if event.HasField("progress") and event.progress.stage == "upload":
            break
    assert await asyncio.to_thread(uploaded.wait, 60), "the upload reached the bucket"
    prefix = "processing/compression/cancel-upload/"
    assert list(store.client.list_objects(store.bucket, prefix=prefix, recursive=True)), "the object exists"
    call.cancel()
    assert await asyncio.to_thread(finished.wait, 10), "the upload thread finished"
    deadline = time.monotonic() + 10
    while list(store.client.list_objects(store.bucket, prefix=prefix, recursive=True)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not list(store.client.list_objects(store.bucket, prefix=prefix, recursive=True)), \
        "a cancelled upload is deleted, never left without a scheduled deletion"


@pytest.fixture()
async def roomy_compressor(janitor_address: str, s3_settings: S3Settings, tmp_path: Path):
    """One job at a time, four more waiting: a whole synapse fits in the queue."""
    server = CompressorServer(settings_for(janitor_address, tmp_path / "work", queue_size=4), s3_settings)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield server, channel
    await channel.close()
    await server.stop(grace=1)


def _synapse_request(http_base: str, index: int, **fields: object) -> compressor_pb2.CompressRequest:
    return compressor_pb2.CompressRequest(source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=85,
                                          batch=common_pb2.Batch(id="synapse-1", size=5, index=index),
                                          job_id=f"synapse-1-{index}", **fields)


async def test_a_five_item_synapse_shares_its_deadline_and_no_item_starves(roomy_compressor, http_base: str,
                                                                          monkeypatch):
    """Five items, one slot, one deadline: each item's core gets the time left over the unfinished items,
    so the first cannot plan with the whole deadline and every item answers in time."""
    import compressor_svc.service as service_module

    real_compress, budgets = service_module.compress, []

    async def recording(*args, budget_seconds: float, **kwargs):
        budgets.append((time.monotonic(), budget_seconds))
        return await real_compress(*args, budget_seconds=budget_seconds, **kwargs)

    monkeypatch.setattr(service_module, "compress", recording)
    server, channel = roomy_compressor
    stub = compressor_pb2_grpc.CompressorStub(channel)
    timeout, started = 75.0, time.monotonic()
    results = await asyncio.gather(*(collect(stub, _synapse_request(http_base, index), timeout=timeout)
                                     for index in range(5)))
    assert time.monotonic() - started < timeout
    assert all(events[-1].HasField("result") and events[-1].result.output.presigned_url for events in results)
    assert len(budgets) == 5
    budgets.sort()
    assert budgets[0][1] <= timeout / 5, "the first item plans with its share, not the whole deadline"
    for position, (at, budget) in enumerate(budgets):
        left = timeout - (at - started)
        assert budget <= left / (5 - position) + 0.5, "never more than an equal split of what is left"
        # less the service's deadline reserve (3 s) and this item's upload reserve (3 s + size / 50 MB/s)
        assert budget >= (left - 3) / (5 - position) - 4, "and never starved below it"
    store = server.service.publisher.store
    sizes = [store.client.stat_object(store.bucket, events[-1].result.output.object_key).size for events in results]
    assert len(set(sizes)) == 5, "the same input five times still gives five downloadable sizes"


async def test_an_organic_job_in_flight_does_not_delay_a_synthetic_item(roomy_compressor, http_base: str):
    server, channel = roomy_compressor
    stub = compressor_pb2_grpc.CompressorStub(channel)
    organic = stub.Compress(compressor_pb2.CompressRequest(
        source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=89, job_id="organic-1",
        priority=common_pb2.JOB_PRIORITY_ORGANIC), timeout=300)
    async for event in organic:
        if event.HasField("progress") and event.progress.stage == "search":
            break
    assert not lanes.paused(ORGANIC)
    started = time.monotonic()
    synthetic = asyncio.create_task(collect(stub, compressor_pb2.CompressRequest(
        source_url=f"{http_base}/two-scenes.mp4", vmaf_threshold=85, job_id="synthetic-1"), timeout=30))
    await asyncio.sleep(0.5)
    assert lanes.paused(ORGANIC), "the organic job's ffmpeg work is stopped while the synthetic item runs"
    events = await synthetic
    assert events[-1].HasField("result") and events[-1].result.meets_threshold
    assert time.monotonic() - started < 30
    assert not lanes.paused(ORGANIC)
    rest = [event async for event in organic]
    assert rest[-1].HasField("result"), "the organic job resumes and finishes afterwards"
