"""mesh.v1.Upscaler over gRPC: converts the request to an `UpscaleTask`, streams progress, then the result."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from mesh.errors import InvalidInput, stream_errors
from mesh.telemetry import JobTelemetry
from mesh.v1 import common_pb2, upscaler_pb2, upscaler_pb2_grpc
from upscaler_svc.jobs import UpscaleResult, UpscaleService, UpscaleTask
from upscaler_svc.pipeline import Progress, resolve_scale

TASK_TYPES = {upscaler_pb2.UPSCALE_TASK_TYPE_SD2HD: "SD2HD", upscaler_pb2.UPSCALE_TASK_TYPE_HD24K: "HD24K",
              upscaler_pb2.UPSCALE_TASK_TYPE_SD24K: "SD24K", upscaler_pb2.UPSCALE_TASK_TYPE_4K28K: "4K28K"}
CODECS = {common_pb2.VIDEO_CODEC_UNSPECIFIED: "hevc", common_pb2.VIDEO_CODEC_HEVC: "hevc",
          common_pb2.VIDEO_CODEC_AV1: "av1"}


def task_from_request(request: upscaler_pb2.UpscaleRequest) -> UpscaleTask:
    if not request.source_url:
        raise InvalidInput("source_url is required")
    if request.codec not in CODECS:
        name = common_pb2.VideoCodec.Name(request.codec)
        raise InvalidInput(f"codec {name} is not offered: use HEVC or AV1")
    if request.task_type and request.task_type not in TASK_TYPES:
        raise InvalidInput(f"unknown task_type {request.task_type}")
    scale = resolve_scale(TASK_TYPES.get(request.task_type), request.scale or None)
    return UpscaleTask(source_url=request.source_url, scale=scale, codec=CODECS[request.codec],
                       model=request.model, job_id=request.job_id)


def _timestamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def result_to_proto(result: UpscaleResult) -> upscaler_pb2.UpscaleResult:
    outcome = result.outcome
    return upscaler_pb2.UpscaleResult(
        output=common_pb2.StoredObject(bucket=result.bucket, object_key=result.key,
                                       presigned_url=result.url.url,
                                       url_expires_at=_timestamp(result.url.expires_at),
                                       delete_at=_timestamp(result.delete_at)),
        media=outcome.output.to_proto(), source=outcome.source.to_proto(),
        timings=[common_pb2.StageTiming(stage=stage, duration=_duration(seconds))
                 for stage, seconds in result.timings.items()],
        model=result.model, engine=outcome.engine, gates=[gate.to_proto() for gate in outcome.gates])


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(dt.timedelta(seconds=seconds))
    return duration


def progress_to_proto(progress: Progress) -> common_pb2.Progress:
    return common_pb2.Progress(stage=progress.stage, done=progress.done, total=progress.total,
                               unit=progress.unit, rate=progress.rate, message=progress.message)


class UpscalerServicer(upscaler_pb2_grpc.UpscalerServicer):
    def __init__(self, service: UpscaleService) -> None:
        self.service = service

    @stream_errors
    async def Upscale(self, request: upscaler_pb2.UpscaleRequest, context: grpc.aio.ServicerContext):
        task = task_from_request(request)
        events: asyncio.Queue[Progress | None] = asyncio.Queue()
        telemetry = JobTelemetry()
        job = asyncio.create_task(self.service.upscale(task, on_progress=events.put_nowait))
        job.add_done_callback(lambda _: events.put_nowait(None))  # after every progress event of the job
        try:
            while (progress := await events.get()) is not None:
                telemetry.progress(progress.stage, progress.done, progress.total, progress.unit, progress.message,
                                progress.rate)
                yield upscaler_pb2.UpscaleEvent(progress=progress_to_proto(progress))
            yield upscaler_pb2.UpscaleEvent(result=result_to_proto(job.result()))
        except BaseException as exc:
            telemetry.fail(exc)
            raise
        finally:
            telemetry.close()
            if not job.done():  # the caller cancelled or its deadline passed: stop the work now
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
