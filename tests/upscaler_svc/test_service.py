"""UpscaleService (the gRPC-free job runner) against real sources over HTTP: SSRF guard, 404, oversize,
non-video, and the bounded job queue."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from mesh.errors import Busy, InvalidInput, SourceNotFound, SourceRefused
from mesh.janitor_client import JanitorClient
from mesh.storage import ObjectStore
from tests.upscaler_svc.conftest import CLIP_29_97, CLIP_BUSY
from upscaler_svc.config import UpscalerSettings
from upscaler_svc.service import UpscaleService, UpscaleTask


@pytest.fixture()
def make_service(s3_settings, janitor_address, weight_cache, tmp_path):
    made = []

    async def make(**overrides) -> UpscaleService:
        values = dict(cpu_backend="torch", cache_dir=weight_cache.cache_dir, x265_preset="ultrafast",
                      work_dir=tmp_path, janitor_addr=janitor_address)
        values.update(overrides)
        service = UpscaleService(UpscalerSettings(**values), ObjectStore(s3_settings),
                                 JanitorClient(values["janitor_addr"]))
        await service.start()
        made.append(service)
        return service

    yield make
    for service in made:
        service.engines.close()


async def test_private_address_sources_are_refused_unless_allowed(make_service, http_root, tiny_clips):
    root, base = http_root
    shutil.copy(tiny_clips(CLIP_29_97), root / "clip.mp4")
    service = await make_service(allow_loopback_sources=False)
    for url in (f"{base}/clip.mp4", base.replace("127.0.0.1", "localhost") + "/clip.mp4"):
        with pytest.raises(SourceRefused, match="non-public"):
            await service.upscale(UpscaleTask(url, scale=2))
    with pytest.raises(InvalidInput, match="http"):
        await service.upscale(UpscaleTask("file:///etc/passwd", scale=2))


async def test_missing_oversize_and_non_video_sources(make_service, http_root, tiny_clips, tmp_path):
    root, base = http_root
    shutil.copy(tiny_clips(CLIP_29_97), root / "clip.mp4")
    (root / "readme.mp4").write_text("plain text, not a video\n" * 20)
    service = await make_service(allow_loopback_sources=True, max_source_bytes=2_000)
    with pytest.raises(SourceNotFound, match="404"):
        await service.upscale(UpscaleTask(f"{base}/nowhere.mp4", scale=2))
    with pytest.raises(InvalidInput, match="cap"):
        await service.upscale(UpscaleTask(f"{base}/clip.mp4", scale=2))
    with pytest.raises(InvalidInput, match="not a readable video|no video"):
        await service.upscale(UpscaleTask(f"{base}/readme.mp4", scale=2))
    with pytest.raises(InvalidInput, match="unknown model"):
        await service.upscale(UpscaleTask(f"{base}/clip.mp4", scale=2, model="/etc/passwd"))
    with pytest.raises(InvalidInput, match="job_id"):
        await service.upscale(UpscaleTask(f"{base}/clip.mp4", scale=2, job_id="../escape"))
    assert list(tmp_path.glob("upscale-*")) == [], "work directories are removed after failures"


async def test_a_full_queue_refuses_with_busy(make_service, http_root, tiny_clips):
    root, base = http_root
    shutil.copy(tiny_clips(CLIP_BUSY, frames=40, width=128), root / "long.mp4")
    service = await make_service(allow_loopback_sources=True, concurrency=1, queue_size=0)
    running = asyncio.Event()

    def on_progress(event) -> None:
        if event.stage == "upscale":
            running.set()

    first = asyncio.create_task(service.upscale(UpscaleTask(f"{base}/long.mp4", scale=4), on_progress))
    await asyncio.wait_for(running.wait(), 60)
    refused = []
    with pytest.raises(Busy, match="full"):
        await service.upscale(UpscaleTask(f"{base}/long.mp4", scale=4), refused.append)
    assert refused == [], "a refused job sends no progress"
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert service.queue.pending == 0


async def test_cancelling_during_upload_leaves_no_object(make_service, s3_settings, tmp_path):
    service = await make_service()
    payload = tmp_path / "result.mp4"
    payload.write_bytes(np.random.default_rng(5).integers(0, 256, 8 << 20, np.uint8).tobytes())
    upload = asyncio.create_task(service.publisher._upload(payload, "upscaled/cancelled.mp4"))
    await asyncio.sleep(0.01)
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload
    await service.close()  # waits for the interrupted upload's clean-up
    assert not ObjectStore(s3_settings).exists("upscaled/cancelled.mp4")
