"""Two real compressors (real janitor, SeaweedFS S3, Valkey, ffmpeg) behind one `dns:///localhost:PORT` group
of a real gateway: one turns NOT_SERVING and is then killed in the middle of a 5-item compression synapse
(sent by a real Dendrite), and every item is still answered.

The compressors listen on the same port, one on 127.0.0.1 and one on [::1]; gRPC's resolver gives both
addresses for `localhost`, so the pool holds a single endpoint that is really two replicas.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
from pathlib import Path

import httpx
import pytest

from compressor_svc.config import CompressorSettings
from compressor_svc.server import CompressorServer
from mesh.config import S3Settings
from mesh.media import probe
from miner_gateway.protocol import CompressionMinerPayload, VideoCompressionProtocol
from tests.compressor_svc.test_pipeline import validator_style
from tests.miner_gateway.conftest import call
from tests.miner_gateway.scripted import dual_stack


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def source_base(clips_dir: Path, tmp_path_factory):
    """An HTTP server on loopback serving one short two-scene clip as `/clip.mp4`."""
    folder = tmp_path_factory.mktemp("replica-sources")
    validator_style(clips_dir, folder / "clip.mp4", frames_each=12, size="192x108")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder / "clip.mp4"
    server.shutdown()
    thread.join(5)


class Replica:
    """A real compressor server, and the job ids it answered (its own service, observed, not replaced)."""

    def __init__(self, server: CompressorServer) -> None:
        self.server = server
        self.answered: list[str] = []
        self.port = 0
        self.stopped = False
        compress = server.service.compress

        async def observed(task, on_progress=None):
            result = await compress(task, on_progress)
            self.answered.append(task.job_id)
            return result

        server.service.compress = observed

    @property
    def running(self) -> int:
        return self.server.service.queue.pending

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.server.stop(grace=0)


@pytest.fixture()
async def compressors(janitor_address: str, s3_settings: S3Settings, tmp_path: Path):
    """Two compressors, one job at a time each and no waiting room (a third call is RESOURCE_EXHAUSTED)."""
    started: list[Replica] = []

    async def start(bind: str, port: int) -> Replica:
        settings = CompressorSettings(host=bind, port=port, drain_seconds=0, janitor_addr=janitor_address,
                                      allow_loopback_sources=True, work_dir=tmp_path / f"work-{len(started)}",
                                      concurrency=1, queue_size=0, threads=1, max_probes_per_scene=2,
                                      refine_passes=0, allow_hardware_encoders=False)
        replica = Replica(CompressorServer(settings, s3_settings))
        replica.port = await replica.server.start()
        started.append(replica)
        return replica

    pair = await dual_stack(start)
    yield pair
    for replica in started:
        await replica.stop()


async def test_not_serving_then_killed_replica_during_a_synapse_loses_no_item(
        compressors, source_base, gateway_factory, dendrite) -> None:
    doomed, survivor = compressors
    base, source = source_base
    gateway = await gateway_factory(compressor_addrs=[f"dns:///localhost:{doomed.port}"], deadline_margin_seconds=2)
    synapse = VideoCompressionProtocol(miner_payload=CompressionMinerPayload(
        reference_video_urls=[f"{base}/clip.mp4"] * 5, vmaf_threshold=85.0, target_codec="hevc", codec_mode="CRF"))
    answer = asyncio.create_task(call(dendrite, gateway, synapse, timeout=240))
    for _ in range(1000):
        if doomed.running:
            break
        await asyncio.sleep(0.01)
    assert doomed.running == 1, "round_robin gave the 127.0.0.1 replica one item"

    await doomed.server.host.set_serving(False)  # the health servicer; gRPC pushes it to the gateway
    for _ in range(3000):
        if not doomed.running and len(survivor.answered) >= 2:
            break
        await asyncio.sleep(0.02)
    # Idle and reachable, but NOT_SERVING: the refused items retried meanwhile all went to the survivor.
    assert len(doomed.answered) == 1, "its item in flight finished after NOT_SERVING, and no other came"
    assert not answer.done() and 2 <= len(survivor.answered) < 4
    await doomed.stop()  # killed while the synapse still runs on the other replica

    urls = (await answer).miner_response.optimized_video_urls
    assert all(urls) and len(set(urls)) == 5, urls
    assert len(survivor.answered) == 4 and len(doomed.answered) == 1

    async with httpx.AsyncClient() as client:
        for index, url in enumerate(urls):
            response = await client.get(url, timeout=30)
            assert response.status_code == 200
            output = source.parent / f"out-{index}.mp4"
            output.write_bytes(response.content)
            facts = probe(output)
            assert facts.codec == "hevc" and facts.frame_count == probe(source).frame_count
