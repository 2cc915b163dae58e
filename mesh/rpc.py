"""The gRPC edge every media servicer shares: status mapping, proto conversion and the stream pump.

Cores raise `mesh.errors.MeshError` with a status *name*; here it becomes a gRPC status. A servicer turns
its request into a core job and hands it to `stream_job`, which runs it, yields its progress (at least once
a second: the core's reporter beats every 0.5 s), then its result, and cancels it when the caller goes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from mesh.batches import BatchRef
from mesh.codecs import CODEC_FAMILIES, RATE_MODES, TASK_SCALES
from mesh.errors import InvalidInput, MeshError
from mesh.gates import Gate
from mesh.media import MediaFacts
from mesh.progress import Progress, ProgressFn
from mesh.publish import StoredResult
from mesh.scheduling import ORGANIC, SYNTHETIC
from mesh.telemetry import JobTelemetry
from mesh.v1 import common_pb2, compressor_pb2, upscaler_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")
EventT = TypeVar("EventT")

# The proto enum for each codec family of mesh.codecs, and back (UNSPECIFIED is the service's default).
CODEC_ENUMS = {family: common_pb2.VideoCodec.Value(f"VIDEO_CODEC_{family.upper()}") for family in CODEC_FAMILIES}
ENUM_CODECS = {value: family for family, value in CODEC_ENUMS.items()}
# The proto enums of the subnet's upscaling task types and of the rate-control modes, and back.
TASK_TYPE_ENUMS = {name: upscaler_pb2.UpscaleTaskType.Value(f"UPSCALE_TASK_TYPE_{name}") for name in TASK_SCALES}
TASK_TYPES = {value: name for name, value in TASK_TYPE_ENUMS.items()}
CODEC_MODE_ENUMS = {mode: compressor_pb2.CodecMode.Value(f"CODEC_MODE_{mode}") for mode in RATE_MODES}
CODEC_MODES = {value: mode for mode, value in CODEC_MODE_ENUMS.items()}


PRIORITIES = {common_pb2.JOB_PRIORITY_UNSPECIFIED: SYNTHETIC, common_pb2.JOB_PRIORITY_SYNTHETIC: SYNTHETIC,
              common_pb2.JOB_PRIORITY_ORGANIC: ORGANIC}
PRIORITY_ENUMS = {SYNTHETIC: common_pb2.JOB_PRIORITY_SYNTHETIC, ORGANIC: common_pb2.JOB_PRIORITY_ORGANIC}


def priority_from_proto(value: int) -> str:
    if value not in PRIORITIES:
        raise InvalidInput(f"unknown priority {value}")
    return PRIORITIES[value]


def batch_from_proto(batch: common_pb2.Batch) -> BatchRef:
    """The item's place in its synapse; INVALID_ARGUMENT when the numbers contradict each other."""
    if not batch.id:
        return BatchRef()
    if len(batch.id) > 128:
        raise InvalidInput("batch.id is longer than 128 characters")
    if not 1 <= batch.size <= 100 or batch.index >= batch.size:
        raise InvalidInput(f"batch index {batch.index} of size {batch.size} is impossible")
    weights = tuple(batch.weights)
    if weights and (len(weights) != batch.size or not all(math.isfinite(w) and w > 0 for w in weights)):
        raise InvalidInput(f"batch.weights must be empty or {batch.size} finite values > 0")
    return BatchRef(batch.id, batch.size, batch.index, weights)


def codec_from_proto(value: int, default: str, offered: Iterable[str]) -> str:
    """The codec family a request's enum names, or INVALID_ARGUMENT naming the families this service offers."""
    offered = tuple(offered)
    family = default if value == common_pb2.VIDEO_CODEC_UNSPECIFIED else ENUM_CODECS.get(value)
    if family not in offered:
        name = common_pb2.VideoCodec.Name(value) if value in common_pb2.VideoCodec.values() else str(value)
        raise InvalidInput(f"codec {name} is not offered: use one of {', '.join(offered)}")
    return family


def status_code(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status of a domain error (INTERNAL for anything unexpected)."""
    return grpc.StatusCode[exc.status] if isinstance(exc, MeshError) else grpc.StatusCode.INTERNAL


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, MeshError):
        await context.abort(status_code(exc), str(exc))
    log.exception("unexpected error in %s", type(exc).__name__)
    await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


def unary_errors(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Map domain errors raised by a unary servicer method to gRPC statuses."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status; abort raises
            await _abort(context, exc)
            raise

    return wrapper


def stream_errors(method: Callable[..., AsyncIterator[T]]) -> Callable[..., AsyncIterator[T]]:
    """Map domain errors raised by a server-streaming servicer method to gRPC statuses."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[T]:
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            await _abort(context, exc)

    return wrapper


def timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(dt.timedelta(seconds=seconds))
    return value


def media_info(facts: MediaFacts) -> common_pb2.MediaInfo:
    return common_pb2.MediaInfo(
        width=facts.width, height=facts.height, fps_num=facts.fps.numerator, fps_den=facts.fps.denominator,
        frame_count=facts.frame_count, duration_seconds=facts.duration, codec=facts.codec, profile=facts.profile,
        pix_fmt=facts.pix_fmt, container=facts.container, size_bytes=facts.size_bytes, bit_rate=facts.bit_rate,
        color_space=facts.color_space, color_transfer=facts.color_transfer,
        color_primaries=facts.color_primaries, sample_aspect_ratio=facts.sample_aspect_ratio)


def gate_checks(gates: Iterable[Gate]) -> list[common_pb2.GateCheck]:
    return [common_pb2.GateCheck(name=gate.name, passed=gate.passed, detail=gate.detail) for gate in gates]


def stage_timings(timings: dict[str, float]) -> list[common_pb2.StageTiming]:
    return [common_pb2.StageTiming(stage=stage, duration=duration(seconds)) for stage, seconds in timings.items()]


def stored_object(stored: StoredResult) -> common_pb2.StoredObject:
    return common_pb2.StoredObject(bucket=stored.bucket, object_key=stored.key, presigned_url=stored.url.url,
                                   url_expires_at=timestamp(stored.url.expires_at),
                                   delete_at=timestamp(stored.delete_at))


def progress_message(progress: Progress) -> common_pb2.Progress:
    return common_pb2.Progress(stage=progress.stage, done=progress.done, total=progress.total,
                               unit=progress.unit, rate=progress.rate, message=progress.message)


async def stream_job(run: Callable[[ProgressFn], Awaitable[T]],
                     progress_event: Callable[[common_pb2.Progress], EventT],
                     result_event: Callable[[T], EventT]) -> AsyncIterator[EventT]:
    """Run `run(on_progress)` as a task and yield its progress events as they come, then its result event.

    The job's spans and metrics follow its progress (`JobTelemetry`). When the stream ends early (the
    caller cancelled or its deadline passed) the job is cancelled and awaited, so its work stops now."""
    events: asyncio.Queue[Progress | None] = asyncio.Queue()
    telemetry = JobTelemetry()
    job = asyncio.create_task(run(events.put_nowait))
    job.add_done_callback(lambda _: events.put_nowait(None))  # after every progress event of the job
    try:
        while (progress := await events.get()) is not None:
            telemetry.progress(progress.stage, progress.done, progress.total, progress.unit, progress.message,
                               progress.rate)
            yield progress_event(progress_message(progress))
        yield result_event(job.result())
    except BaseException as exc:
        telemetry.fail(exc)
        raise
    finally:
        telemetry.close()
        if not job.done():
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
