"""mesh.v1.Compressor over gRPC: request → `CompressTask` (the call's deadline is the job's budget), then the
shared stream pump (progress at least once a second, then the result)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from compressor_svc.job import CompressJob
from compressor_svc.service import CompressResult, CompressService, CompressTask
from mesh import rpc
from mesh.codecs import CODEC_FAMILIES
from mesh.errors import InvalidInput
from mesh.jobs import job_id_or_new
from mesh.v1 import compressor_pb2, compressor_pb2_grpc


def task_from_request(request: compressor_pb2.CompressRequest, budget_seconds: float | None) -> CompressTask:
    """Validate the request fields (INVALID_ARGUMENT on any problem) into the service's task."""
    if not request.source_url:
        raise InvalidInput("source_url is required")
    codec = rpc.codec_from_proto(request.target_codec, "av1", CODEC_FAMILIES)
    unspecified = request.codec_mode == compressor_pb2.CODEC_MODE_UNSPECIFIED
    mode = "CRF" if unspecified else rpc.CODEC_MODES.get(request.codec_mode)
    if mode is None:
        raise InvalidInput(f"unknown codec_mode {request.codec_mode}")
    job = CompressJob(request.vmaf_threshold, codec, mode, request.target_bitrate_mbps).validated()
    return CompressTask(request.source_url, job, job_id_or_new(request.job_id), budget_seconds,
                        rpc.batch_from_proto(request.batch), rpc.priority_from_proto(request.priority),
                        request.operator_seed[:128])


def result_to_proto(result: CompressResult) -> compressor_pb2.CompressResult:
    outcome = result.outcome
    return compressor_pb2.CompressResult(
        output=rpc.stored_object(result.stored), media=rpc.media_info(outcome.media),
        source=rpc.media_info(outcome.source), timings=rpc.stage_timings(result.timings), vmaf=outcome.vmaf,
        vmaf_neg=outcome.vmaf_neg, compression_ratio=outcome.ratio, predicted_score=outcome.predicted_score,
        meets_threshold=outcome.meets_threshold, encoder=outcome.encoder, scene_count=outcome.scene_count,
        note=outcome.note, gates=rpc.gate_checks(outcome.gates))


class CompressorServicer(compressor_pb2_grpc.CompressorServicer):
    def __init__(self, service: CompressService) -> None:
        self.service = service

    @rpc.stream_errors
    async def Compress(self, request: compressor_pb2.CompressRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[compressor_pb2.CompressEvent]:
        task = task_from_request(request, context.time_remaining())
        async for event in rpc.stream_job(lambda on_progress: self.service.compress(task, on_progress),
                                          lambda progress: compressor_pb2.CompressEvent(progress=progress),
                                          lambda result: compressor_pb2.CompressEvent(
                                              result=result_to_proto(result))):
            yield event
