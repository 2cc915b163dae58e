"""mesh.v1.Upscaler over gRPC: request → `UpscaleTask`, then the shared stream pump (progress, result)."""

from __future__ import annotations

import grpc

from mesh import rpc
from mesh.codecs import UPSCALE_CODECS, resolve_scale
from mesh.errors import InvalidInput
from mesh.jobs import job_id_or_new
from mesh.v1 import upscaler_pb2, upscaler_pb2_grpc
from upscaler_svc.service import UpscaleResult, UpscaleService, UpscaleTask


def task_from_request(request: upscaler_pb2.UpscaleRequest, budget_seconds: float | None = None) -> UpscaleTask:
    """Validate the request fields (INVALID_ARGUMENT on any problem) into the service's task."""
    if not request.source_url:
        raise InvalidInput("source_url is required")
    codec = rpc.codec_from_proto(request.codec, "hevc", UPSCALE_CODECS)
    if request.task_type and request.task_type not in rpc.TASK_TYPES:
        raise InvalidInput(f"unknown task_type {request.task_type}")
    scale = resolve_scale(rpc.TASK_TYPES.get(request.task_type), request.scale or None)
    return UpscaleTask(source_url=request.source_url, scale=scale, codec=codec, model=request.model,
                       job_id=job_id_or_new(request.job_id), budget_seconds=budget_seconds,
                       batch=rpc.batch_from_proto(request.batch), priority=rpc.priority_from_proto(request.priority))


def result_to_proto(result: UpscaleResult) -> upscaler_pb2.UpscaleResult:
    outcome = result.outcome.pipeline
    return upscaler_pb2.UpscaleResult(
        output=rpc.stored_object(result.stored), media=rpc.media_info(outcome.output),
        source=rpc.media_info(outcome.source), timings=rpc.stage_timings(result.timings),
        model=result.outcome.model, engine=outcome.engine, gates=rpc.gate_checks(outcome.gates))


class UpscalerServicer(upscaler_pb2_grpc.UpscalerServicer):
    def __init__(self, service: UpscaleService) -> None:
        self.service = service

    @rpc.stream_errors
    async def Upscale(self, request: upscaler_pb2.UpscaleRequest, context: grpc.aio.ServicerContext):
        task = task_from_request(request, context.time_remaining())
        async for event in rpc.stream_job(lambda on_progress: self.service.upscale(task, on_progress),
                                          lambda progress: upscaler_pb2.UpscaleEvent(progress=progress),
                                          lambda result: upscaler_pb2.UpscaleEvent(result=result_to_proto(result))):
            yield event
