"""Fan-out of work items to upscaler/compressor replicas over their streaming gRPC contracts.

Each item is one server-streaming call, all items of a synapse run concurrently, and each gets the
synapse's deadline. A failed or late item becomes "" without touching the others. Each call goes to the
least-busy healthy endpoint of its pool (`miner_gateway.pool`), whose channel already retries UNAVAILABLE on
its other replicas; a call still refused before any event (UNAVAILABLE, RESOURCE_EXHAUSTED) is retried on
another endpoint, and on all of them again after a backoff, while time remains; after the first event it is
never retried (the work may be half done). Every item is one CLIENT span whose progress events and failures
are recorded on it. The requests themselves are built in `miner_gateway.requests`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import grpc
from opentelemetry import trace

from mesh.codecs import compression_time_weight
from mesh.scheduling import SYNTHETIC
from mesh.telemetry import outgoing_metadata
from mesh.v1 import common_pb2, compressor_pb2, upscaler_pb2
from miner_gateway.items import CompressItem, UpscaleItem
from miner_gateway.pool import Endpoint, EndpointPool
from miner_gateway.requests import InvalidItem, compress_request, upscale_request

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

RETRY_ELSEWHERE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
MAX_BACKOFF_SECONDS = 2.0

OnItemDone = Callable[[int, str], Awaitable[None]]
Metadata = tuple[tuple[str, str], ...]
Item = UpscaleItem | CompressItem


class ItemFailed(Exception):
    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code


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
        operator_seed: str = "",
    ) -> None:
        self.upscalers = upscalers
        self.compressors = compressors
        self._upscale_codec = upscale_codec
        self._upscale_model = upscale_model
        self._max_items = max_items
        self._operator_seed = operator_seed

    async def upscale(
        self, items: Sequence[UpscaleItem], deadline: float, label: str, on_done: OnItemDone | None = None,
        priority: str = SYNTHETIC,
    ) -> list[str]:
        """`deadline` is a time.monotonic() instant; `label` names the batch (the synapse or job) and prefixes
        each item's job id."""

        def build(item: UpscaleItem) -> upscaler_pb2.UpscaleRequest:
            return upscale_request(item, self._upscale_codec, self._upscale_model, f"{label}-{item.index}",
                                   _batch(label, items, item), priority)

        def attributes(item: UpscaleItem) -> dict[str, object]:
            return {"mesh.task_type": item.task_type}

        return await self._run_all(self.upscalers, items, build, attributes, deadline, on_done)

    async def compress(
        self, items: Sequence[CompressItem], deadline: float, label: str, on_done: OnItemDone | None = None,
        priority: str = SYNTHETIC,
    ) -> list[str]:
        # Compression items share the synapse's time by what their codec and threshold cost.
        weights = [compression_time_weight(item.target_codec, item.vmaf_threshold) for item in items]

        def build(item: CompressItem) -> compressor_pb2.CompressRequest:
            return compress_request(item, f"{label}-{item.index}", _batch(label, items, item, weights), priority,
                                    self._operator_seed)

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


def _batch(label: str, items: Sequence[Item], item: Item, weights: Sequence[float] = ()) -> common_pb2.Batch:
    """The items sent together are one batch: the services share its deadline among them, in proportion to
    `weights` (one per item; none = equal shares)."""
    index = next(position for position, other in enumerate(items) if other is item)
    return common_pb2.Batch(id=label, size=len(items), index=index, weights=weights)


async def _call(pool: EndpointPool, request, deadline: float, span: trace.Span, index: int) -> str:
    """One item on the pool: retry refused calls on other endpoints, with backoff once all were tried.

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
