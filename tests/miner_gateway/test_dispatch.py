"""Fan-out to real (scripted) Upscaler/Compressor gRPC servers: mapping, pools, failover, deadlines."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from mesh.embedded import free_port
from mesh.v1 import common_pb2, compressor_pb2, upscaler_pb2
from miner_gateway.dispatch import Dispatcher
from miner_gateway.items import CompressItem, UpscaleItem, compress_items
from miner_gateway.pool import COMPRESSOR_SERVICE, UPSCALER_SERVICE, EndpointPool
from miner_gateway.protocol import VideoCompressionProtocol
from tests.miner_gateway.conftest import load_fixture
from tests.miner_gateway.scripted import result_url, start_backend


def upscale(*behaviours: str, task_type: str = "HD24K") -> list[UpscaleItem]:
    return [
        UpscaleItem(index, f"https://v.test/{behaviour}/{index}.mp4", task_type)
        for index, behaviour in enumerate(behaviours)
    ]


@pytest.fixture()
async def replicas():
    """Start scripted replicas on demand; all are stopped at the end."""
    started = []

    async def start(name: str, serving: bool = True):
        backend = await start_backend(name, serving)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        await backend.host.stop(0)


@pytest.fixture()
async def pools():
    opened: list[EndpointPool] = []

    async def open_pool(*addresses: str, service: str = UPSCALER_SERVICE) -> EndpointPool:
        pool = EndpointPool(service, list(addresses))
        await pool.start()
        opened.append(pool)
        return pool

    yield open_pool
    for pool in opened:
        await pool.close()


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


async def test_upscale_requests_carry_task_type_scale_codec_and_job_id(replicas, pools) -> None:
    backend = await replicas("a")
    dispatcher = Dispatcher(await pools(backend.address), None, upscale_codec="av1", upscale_model="x4plus")
    items = [
        UpscaleItem(i, f"https://v.test/ok/{i}.mp4", task)
        for i, task in enumerate(["SD24K", "SD2HD", "HD24K", "4K28K", "sd24k", "FUTURE"])
    ]
    urls = await dispatcher.upscale(items, soon(), "round7")
    assert urls == [result_url(f"round7-{i}") for i in range(6)]
    sent = {request.job_id: request for request in backend.script.requests}
    assert [(sent[f"round7-{i}"].task_type, sent[f"round7-{i}"].scale) for i in range(6)] == [
        (upscaler_pb2.UPSCALE_TASK_TYPE_SD24K, 4),
        (upscaler_pb2.UPSCALE_TASK_TYPE_SD2HD, 2),
        (upscaler_pb2.UPSCALE_TASK_TYPE_HD24K, 2),
        (upscaler_pb2.UPSCALE_TASK_TYPE_4K28K, 2),
        (upscaler_pb2.UPSCALE_TASK_TYPE_SD24K, 4),
        (upscaler_pb2.UPSCALE_TASK_TYPE_UNSPECIFIED, 2),
    ]
    assert {(r.codec, r.model) for r in sent.values()} == {(common_pb2.VIDEO_CODEC_AV1, "x4plus")}


async def test_compress_requests_map_codec_mode_bitrate_and_threshold(replicas, pools) -> None:
    backend = await replicas("a")
    dispatcher = Dispatcher(None, await pools(backend.address, service=COMPRESSOR_SERVICE))
    items = compress_items(VideoCompressionProtocol(**load_fixture("head_compression.json")).miner_payload)
    urls = await dispatcher.compress(items, soon(), "r")
    assert all(urls) and len(urls) == 5
    sent = sorted(backend.script.requests, key=lambda request: request.job_id)
    assert [(r.vmaf_threshold, r.target_codec, r.codec_mode, r.target_bitrate_mbps) for r in sent] == [
        (85.0, common_pb2.VIDEO_CODEC_AV1, compressor_pb2.CODEC_MODE_CRF, 10.0),
        (89.0, common_pb2.VIDEO_CODEC_HEVC, compressor_pb2.CODEC_MODE_VBR, 5.0),
        (93.0, common_pb2.VIDEO_CODEC_AV1, compressor_pb2.CODEC_MODE_VBR, 8.0),
        (89.0, common_pb2.VIDEO_CODEC_HEVC, compressor_pb2.CODEC_MODE_CRF, 10.0),
        (85.0, common_pb2.VIDEO_CODEC_AV1, compressor_pb2.CODEC_MODE_CRF, 10.0),
    ]
    weights = [list(r.batch.weights) for r in sent]
    assert all(w == weights[0] for w in weights) and len(weights[0]) == 5, "every item carries the batch's weights"
    assert weights[0][1] > weights[0][0] and weights[0][2] > weights[0][0], "x265 and T=93 items get more time"
    assert [r.batch.index for r in sent] == [0, 1, 2, 3, 4] and {r.batch.size for r in sent} == {5}


async def test_unusable_items_fail_without_a_call_and_the_rest_succeed(replicas, pools) -> None:
    backend = await replicas("a")
    dispatcher = Dispatcher(None, await pools(backend.address, service=COMPRESSOR_SERVICE))
    good = CompressItem(0, "https://v.test/ok/0.mp4", 89.0, "hevc", "vbr", 5.0)
    items = [
        good,
        CompressItem(1, "file:///etc/passwd", 89.0, "av1", "CRF", 5.0),
        CompressItem(2, "https://v.test/ok/2.mp4", 89.0, "mpeg2", "CRF", 5.0),
        CompressItem(3, "https://v.test/ok/3.mp4", 89.0, "av1", "LOSSLESS", 5.0),
        CompressItem(4, "https://v.test/ok/4.mp4", 89.0, "av1", "CBR", 0.0),
        CompressItem(5, "https://v.test/ok/5.mp4", 189.0, "av1", "CRF", 5.0),
    ]
    urls = await dispatcher.compress(items, soon(), "r")
    assert urls == [result_url("r-0"), "", "", "", "", ""]
    assert backend.script.sources() == [good.source_url]


async def test_one_failing_item_leaves_the_others_aligned(replicas, pools) -> None:
    backend = await replicas("a")
    dispatcher = Dispatcher(await pools(backend.address), None)
    urls = await dispatcher.upscale(upscale("ok", "slow", "fail", "noresult", "ok"), soon(), "r")
    assert urls == [result_url("r-0"), result_url("r-1"), "", "", result_url("r-4")]


async def test_late_item_yields_empty_by_the_deadline_and_is_cancelled(replicas, pools) -> None:
    backend = await replicas("a")
    dispatcher = Dispatcher(await pools(backend.address), None)
    started = time.monotonic()
    urls = await dispatcher.upscale(upscale("hang", "ok"), soon(0.6), "r")
    elapsed = time.monotonic() - started
    assert urls == ["", result_url("r-1")]
    assert 0.5 < elapsed < 1.5
    for _ in range(50):
        if backend.script.cancelled:
            break
        await asyncio.sleep(0.02)
    assert backend.script.cancelled == 1


async def test_refused_call_is_retried_on_another_replica(replicas, pools) -> None:
    full, healthy = await replicas("full"), await replicas("healthy")
    full.script.refuse = grpc.StatusCode.RESOURCE_EXHAUSTED
    dispatcher = Dispatcher(await pools(full.address, healthy.address), None)
    urls = await dispatcher.upscale(upscale("ok", "ok", "ok", "ok"), soon(), "r")
    assert all(urls)
    assert len(healthy.script.requests) == 4
    assert full.script.requests, "the least-busy choice should have tried the full replica too"


async def test_unreachable_replica_is_skipped_and_marked_unhealthy(replicas, pools) -> None:
    healthy = await replicas("healthy")
    dead = f"127.0.0.1:{free_port()}"
    pool = await pools(dead, healthy.address)
    dispatcher = Dispatcher(pool, None)
    urls = await dispatcher.upscale(upscale("ok", "ok", "ok"), soon(), "r")
    assert all(urls) and len(healthy.script.requests) == 3
    assert {endpoint.address: endpoint.healthy for endpoint in pool.endpoints} == {
        dead: False,
        healthy.address: True,
    }


async def test_not_serving_replica_gets_no_work_while_a_serving_one_exists(replicas, pools) -> None:
    loading, ready = await replicas("loading", serving=False), await replicas("ready")
    dispatcher = Dispatcher(await pools(loading.address, ready.address), None)
    urls = await dispatcher.upscale(upscale("ok", "ok", "ok", "ok"), soon(), "r")
    assert all(urls)
    assert loading.script.requests == [] and len(ready.script.requests) == 4


async def test_replica_becoming_ready_is_pushed_over_the_health_watch(replicas, pools) -> None:
    """No prober runs: the channel's health Watch stream carries the change as it happens."""
    replica = await replicas("late", serving=False)
    pool = await pools(replica.address)
    assert pool.endpoints[0].state == grpc.ChannelConnectivity.TRANSIENT_FAILURE
    await replica.host.set_serving(True)
    started = time.monotonic()
    await asyncio.wait_for(pool.endpoints[0].channel.channel_ready(), timeout=1.0)
    assert pool.endpoints[0].healthy and time.monotonic() - started < 1.0
    await replica.host.set_serving(False)
    await asyncio.wait_for(pool.endpoints[0].channel.wait_for_state_change(grpc.ChannelConnectivity.READY), 1.0)
    assert pool.endpoints[0].state == grpc.ChannelConnectivity.TRANSIENT_FAILURE


async def test_least_busy_replica_is_chosen(replicas, pools) -> None:
    first, second = await replicas("first"), await replicas("second")
    dispatcher = Dispatcher(await pools(first.address, second.address), None)
    run = asyncio.create_task(dispatcher.upscale(upscale("hold", "hold", "hold", "hold"), soon(), "r"))
    for _ in range(100):
        if len(first.script.requests) + len(second.script.requests) == 4:
            break
        await asyncio.sleep(0.02)
    assert (len(first.script.requests), len(second.script.requests)) == (2, 2)
    first.script.release.set()
    second.script.release.set()
    assert all(await run)


async def test_no_retry_after_progress_and_no_endless_retry_when_all_refuse(replicas, pools) -> None:
    backend = await replicas("a")
    dispatcher = Dispatcher(await pools(backend.address), None)
    assert await dispatcher.upscale(upscale("fail"), soon(), "r") == [""]
    assert len(backend.script.requests) == 1
    started = time.monotonic()
    assert await dispatcher.upscale(upscale("down"), soon(0.8), "r") == [""]
    assert time.monotonic() - started < 1.6
    assert len(backend.script.requests) > 2, "an UNAVAILABLE before any event is retried with backoff"


async def test_items_beyond_the_limit_are_empty_and_not_sent(replicas, pools) -> None:
    backend = await replicas("a")
    dispatcher = Dispatcher(await pools(backend.address), None, max_items=2)
    assert await dispatcher.upscale(upscale("ok", "ok", "ok"), soon(), "r") == [
        result_url("r-0"),
        result_url("r-1"),
        "",
    ]
    assert len(backend.script.requests) == 2


async def test_task_without_endpoints_yields_empty() -> None:
    assert await Dispatcher(None, None).upscale(upscale("ok", "ok"), soon(), "r") == ["", ""]


async def test_progress_is_traced_and_failures_mark_the_item_span(replicas, pools, spans) -> None:
    backend = await replicas("a")
    dispatcher = Dispatcher(await pools(backend.address), None)
    spans.clear()
    await dispatcher.upscale(upscale("slow", "fail"), soon(), "r")
    items = {
        span.attributes["mesh.item.index"]: span
        for span in spans.get_finished_spans()
        if span.name == "mesh.item"
    }
    progress = [event for event in items[0].events if event.name == "progress"]
    assert [event.attributes["stage"] for event in progress] == [
        "queued",
        "upscale",
        "upscale",
        "upscale",
        "upload",
    ]
    assert items[0].attributes["mesh.item.ok"] is True and items[0].attributes["mesh.task_type"] == "HD24K"
    assert items[1].status.status_code.name == "ERROR" and "INVALID_ARGUMENT" in items[1].status.description
