"""Fan-out of work items to upscaler/compressor replicas over their streaming gRPC contracts.

Each item is one server-streaming call, all items of a synapse run concurrently, and each gets the
synapse's deadline. A failed or late item becomes "" without touching the others. Replicas are kept in
pools: the least-busy healthy replica is chosen, and a call refused before any event (UNAVAILABLE,
RESOURCE_EXHAUSTED) is retried on another replica while time remains.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace

from mesh.server import MAX_MESSAGE_BYTES
from mesh.telemetry import outgoing_metadata, rpc_attributes
from mesh.v1 import common_pb2, compressor_pb2, compressor_pb2_grpc, upscaler_pb2, upscaler_pb2_grpc
from miner_gateway.items import CompressItem, UpscaleItem

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

UPSCALER_SERVICE = upscaler_pb2.DESCRIPTOR.services_by_name["Upscaler"].full_name
COMPRESSOR_SERVICE = compressor_pb2.DESCRIPTOR.services_by_name["Compressor"].full_name

# Each service's streaming method: its name in the contract and the stub class that calls it.
STREAMING_METHODS = {
    UPSCALER_SERVICE: ("Upscale", upscaler_pb2_grpc.UpscalerStub),
    COMPRESSOR_SERVICE: ("Compress", compressor_pb2_grpc.CompressorStub),
}

RETRY_ELSEWHERE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
MAX_BACKOFF_SECONDS = 2.0

UPSCALE_TASK_TYPES = {
    "SD2HD": upscaler_pb2.UPSCALE_TASK_TYPE_SD2HD,
    "HD24K": upscaler_pb2.UPSCALE_TASK_TYPE_HD24K,
    "SD24K": upscaler_pb2.UPSCALE_TASK_TYPE_SD24K,
    "4K28K": upscaler_pb2.UPSCALE_TASK_TYPE_4K28K,
}
CODECS = {
    "av1": common_pb2.VIDEO_CODEC_AV1,
    "hevc": common_pb2.VIDEO_CODEC_HEVC,
    "h265": common_pb2.VIDEO_CODEC_HEVC,
    "h264": common_pb2.VIDEO_CODEC_H264,
    "avc": common_pb2.VIDEO_CODEC_H264,
    "vp9": common_pb2.VIDEO_CODEC_VP9,
}
CODEC_MODES = {
    "CRF": compressor_pb2.CODEC_MODE_CRF,
    "VBR": compressor_pb2.CODEC_MODE_VBR,
    "CBR": compressor_pb2.CODEC_MODE_CBR,
}

OnItemDone = Callable[[int, str], Awaitable[None]]
Metadata = tuple[tuple[str, str], ...]
Item = UpscaleItem | CompressItem


class InvalidItem(ValueError):
    """The item cannot be turned into a request (not an http(s) URL, unknown codec, ...)."""


class ItemFailed(Exception):
    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code


def _check_source(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise InvalidItem(f"source URL must be http(s), got {url[:60]!r}")


def upscale_request(item: UpscaleItem, codec: str, model: str, job_id: str) -> upscaler_pb2.UpscaleRequest:
    """Unknown task types are sent with scale 2, as the subnet's miner does (4 only for SD24K)."""
    _check_source(item.source_url)
    task_type = item.task_type.upper()
    return upscaler_pb2.UpscaleRequest(
        source_url=item.source_url,
        task_type=UPSCALE_TASK_TYPES.get(task_type, upscaler_pb2.UPSCALE_TASK_TYPE_UNSPECIFIED),
        scale=4 if task_type == "SD24K" else 2,
        codec=CODECS[codec],
        model=model,
        job_id=job_id,
    )


def compress_request(item: CompressItem, job_id: str) -> compressor_pb2.CompressRequest:
    _check_source(item.source_url)
    codec = CODECS.get(item.target_codec.strip().lower())
    if codec is None:
        raise InvalidItem(f"unknown target codec {item.target_codec[:20]!r}")
    mode = CODEC_MODES.get(item.codec_mode.strip().upper())
    if mode is None:
        raise InvalidItem(f"unknown codec mode {item.codec_mode[:20]!r}")
    if not 0.0 <= item.vmaf_threshold <= 100.0:
        raise InvalidItem(f"VMAF threshold {item.vmaf_threshold} is outside [0, 100]")
    if mode != compressor_pb2.CODEC_MODE_CRF and item.target_bitrate_mbps <= 0:
        raise InvalidItem(f"{item.codec_mode} needs a positive target bitrate")
    return compressor_pb2.CompressRequest(
        source_url=item.source_url,
        vmaf_threshold=item.vmaf_threshold,
        target_codec=codec,
        codec_mode=mode,
        target_bitrate_mbps=item.target_bitrate_mbps,
        job_id=job_id,
    )


@dataclass(eq=False)
class Endpoint:
    """One replica: its channel, the streaming method, and what the gateway knows about its load."""

    address: str
    channel: grpc.aio.Channel
    method: Callable[..., object]
    in_flight: int = 0
    picks: int = 0
    healthy: bool = True


class EndpointPool:
    """Replicas of one service; chooses the least-busy healthy one and probes health in the background."""

    def __init__(self, service: str, addresses: Sequence[str], health_interval: float = 5.0) -> None:
        self.service = service
        self._method_name, self._stub = STREAMING_METHODS[service]
        self.rpc_attributes = rpc_attributes(f"/{service}/{self._method_name}")
        self.addresses = list(addresses)
        self.health_interval = health_interval
        self.endpoints: list[Endpoint] = []
        self._prober: asyncio.Task | None = None

    async def start(self) -> None:
        """Open a channel per replica and probe health now and every `health_interval` seconds."""
        for address in self.addresses:
            channel = grpc.aio.insecure_channel(
                address, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
            )
            self.endpoints.append(Endpoint(address, channel, getattr(self._stub(channel), self._method_name)))
        await self.probe()
        self._prober = asyncio.create_task(self._probe_forever(), name=f"health {self.service}")

    def choose(self, exclude: set[str]) -> Endpoint | None:
        """Least in-flight calls among healthy replicas not yet tried; any untried one if none is healthy."""
        candidates = [e for e in self.endpoints if e.address not in exclude]
        pool = [e for e in candidates if e.healthy] or candidates
        if not pool:
            return None
        chosen = min(pool, key=lambda e: (e.in_flight, e.picks))
        chosen.picks += 1
        return chosen

    async def probe(self) -> None:
        await asyncio.gather(*(self._probe_one(endpoint) for endpoint in self.endpoints))

    async def _probe_one(self, endpoint: Endpoint) -> None:
        try:
            reply = await health_pb2_grpc.HealthStub(endpoint.channel).Check(
                health_pb2.HealthCheckRequest(service=self.service), timeout=min(1.0, self.health_interval)
            )
            healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            healthy = False
        if healthy != endpoint.healthy:
            log.info(
                "endpoint health changed",
                extra={"grpc_service": self.service, "endpoint": endpoint.address, "healthy": healthy},
            )
        endpoint.healthy = healthy

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            await self.probe()

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
        await asyncio.gather(*(endpoint.channel.close() for endpoint in self.endpoints))


class Dispatcher:
    """Runs the items of one synapse or job on the pools and returns one URL per item ("" when it failed)."""

    def __init__(
        self,
        upscalers: EndpointPool | None,
        compressors: EndpointPool | None,
        *,
        upscale_codec: str = "hevc",
        upscale_model: str = "",
        max_items: int = 10,
    ) -> None:
        self.upscalers = upscalers
        self.compressors = compressors
        self._upscale_codec = upscale_codec
        self._upscale_model = upscale_model
        self._max_items = max_items

    async def upscale(
        self, items: Sequence[UpscaleItem], deadline: float, label: str, on_done: OnItemDone | None = None
    ) -> list[str]:
        """`deadline` is a time.monotonic() instant; `label` prefixes each item's job id."""

        def build(item: UpscaleItem) -> upscaler_pb2.UpscaleRequest:
            return upscale_request(item, self._upscale_codec, self._upscale_model, f"{label}-{item.index}")

        def attributes(item: UpscaleItem) -> dict[str, object]:
            return {"mesh.task_type": item.task_type}

        return await self._run_all(self.upscalers, items, build, attributes, deadline, on_done)

    async def compress(
        self, items: Sequence[CompressItem], deadline: float, label: str, on_done: OnItemDone | None = None
    ) -> list[str]:
        def build(item: CompressItem) -> compressor_pb2.CompressRequest:
            return compress_request(item, f"{label}-{item.index}")

        def attributes(item: CompressItem) -> dict[str, object]:
            return {
                "mesh.task_type": "compression",
                "mesh.codec": item.target_codec,
                "mesh.codec_mode": item.codec_mode,
                "mesh.vmaf_threshold": item.vmaf_threshold,
            }

        return await self._run_all(self.compressors, items, build, attributes, deadline, on_done)

    async def _run_all(
        self,
        pool: EndpointPool | None,
        items: Sequence[Item],
        build: Callable[[Item], object],
        attributes: Callable[[Item], dict[str, object]],
        deadline: float,
        on_done: OnItemDone | None,
    ) -> list[str]:
        rpc = pool.rpc_attributes if pool is not None else {}

        async def run(position: int, item: Item) -> str:
            with tracer.start_as_current_span(
                "mesh.item",
                kind=trace.SpanKind.CLIENT,
                attributes={**rpc, "mesh.item.index": item.index, **attributes(item)},
            ) as span:
                url = await self._run_one(pool, position, item, build, deadline, span)
                span.set_attribute("mesh.item.ok", bool(url))
            if on_done is not None:
                await on_done(item.index, url)
            return url

        return list(await asyncio.gather(*(run(position, item) for position, item in enumerate(items))))

    async def _run_one(
        self,
        pool: EndpointPool | None,
        position: int,
        item: Item,
        build: Callable[[Item], object],
        deadline: float,
        span: trace.Span,
    ) -> str:
        try:
            if pool is None:
                raise InvalidItem("no endpoints are configured for this task")
            if position >= self._max_items:
                raise InvalidItem(f"more than {self._max_items} videos in one request")
            return await _call(pool, build(item), deadline, span, item.index)
        except (InvalidItem, ItemFailed) as exc:
            span.set_status(trace.StatusCode.ERROR, str(exc))
            log.warning("item failed", extra={"item": item.index, "reason": str(exc)})
        except Exception as exc:  # noqa: BLE001 - one item's bug must not fail the others
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            log.exception("item failed unexpectedly", extra={"item": item.index})
        return ""


async def _call(pool: EndpointPool, request, deadline: float, span: trace.Span, index: int) -> str:
    """One item on the pool: retry refused calls on other replicas, with backoff once all were tried.

    The item span is the CLIENT span of every attempt: its context travels in each call's metadata.
    """
    metadata = outgoing_metadata()
    tried: set[str] = set()
    backoff = itertools.chain((0.1, 0.2, 0.5, 1.0), itertools.repeat(MAX_BACKOFF_SECONDS))
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ItemFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left for this item")
        endpoint = pool.choose(tried)
        if endpoint is None:
            tried.clear()
            await asyncio.sleep(min(next(backoff), remaining))
            continue
        span.set_attribute("server.address", endpoint.address)
        try:
            return await _stream(endpoint, request, remaining, metadata, span, index)
        except _Refused as refused:
            span.add_event("refused", {"endpoint": endpoint.address, "code": refused.code.name})
            tried.add(endpoint.address)
            if refused.code == grpc.StatusCode.UNAVAILABLE:
                endpoint.healthy = False
            log.info(
                "endpoint refused the call; trying another",
                extra={"endpoint": endpoint.address, "code": refused.code.name, "item": index},
            )


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code


async def _stream(
    endpoint: Endpoint, request, timeout: float, metadata: Metadata, span: trace.Span, index: int
) -> str:
    """Follow one call's events to its result; the call is cancelled if we leave early."""
    endpoint.in_flight += 1
    url, stage = "", ""
    started = False
    call = None
    try:
        call = endpoint.method(request, timeout=timeout, metadata=metadata)
        async for event in call:
            started = True
            if event.WhichOneof("event") == "progress":
                stage = _report(event.progress, stage, span, endpoint.address, index)
            else:
                url = event.result.output.presigned_url
        span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])
    except grpc.aio.AioRpcError as exc:
        span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
        if not started and exc.code() in RETRY_ELSEWHERE:
            raise _Refused(exc.code()) from None
        raise ItemFailed(exc.code(), exc.details() or "") from None
    finally:
        endpoint.in_flight -= 1
        if call is not None and not call.done():
            call.cancel()
    if not url:
        raise ItemFailed(grpc.StatusCode.INTERNAL, "the stream closed without a result URL")
    return url


def _report(
    progress: common_pb2.Progress, last_stage: str, span: trace.Span, endpoint: str, index: int
) -> str:
    """Every progress event becomes a span event; stage changes are also logged."""
    span.add_event(
        "progress",
        {
            "stage": progress.stage,
            "done": progress.done,
            "total": progress.total,
            "unit": progress.unit,
            "message": progress.message,
        },
    )
    level = logging.INFO if progress.stage != last_stage else logging.DEBUG
    log.log(
        level,
        "item progress",
        extra={
            "item": index,
            "endpoint": endpoint,
            "stage": progress.stage,
            "done": progress.done,
            "total": progress.total,
            "unit": progress.unit,
            "detail": progress.message,
        },
    )
    return progress.stage
