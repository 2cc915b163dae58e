"""mesh.v1.Janitor over gRPC: converts messages to and from the domain API in janitor.py."""

from __future__ import annotations

import datetime as dt

import grpc
from google.protobuf import timestamp_pb2

from janitor_svc.janitor import DeletionRequest, Janitor, Scheduled
from mesh.rpc import timestamp, unary_errors
from mesh.v1 import janitor_pb2, janitor_pb2_grpc


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    return timestamp(dt.datetime.fromtimestamp(seconds, dt.UTC))


def _deletion(request: janitor_pb2.ScheduleDeletionRequest) -> DeletionRequest:
    when = request.WhichOneof("when")
    # Plain arithmetic: protobuf's conversions raise on absurd values, which must be INVALID_ARGUMENT.
    delay = request.delay.seconds + request.delay.nanos / 1e9 if when == "delay" else None
    delete_at = request.delete_at.seconds + request.delete_at.nanos / 1e9 if when == "delete_at" else None
    return DeletionRequest(request.bucket, request.object_key, delay, delete_at)


def _scheduled(scheduled: Scheduled) -> janitor_pb2.ScheduleDeletionResponse:
    return janitor_pb2.ScheduleDeletionResponse(delete_at=_timestamp(scheduled.due),
                                                replaced=scheduled.replaced)


class JanitorServicer(janitor_pb2_grpc.JanitorServicer):
    def __init__(self, janitor: Janitor) -> None:
        self.janitor = janitor

    @unary_errors
    async def ScheduleDeletion(self, request: janitor_pb2.ScheduleDeletionRequest,
                               context: grpc.aio.ServicerContext) -> janitor_pb2.ScheduleDeletionResponse:
        deletion = _deletion(request)
        scheduled = await self.janitor.schedule_deletion(deletion.bucket, deletion.key, delay=deletion.delay,
                                                         delete_at=deletion.delete_at)
        return _scheduled(scheduled)

    @unary_errors
    async def ScheduleDeletions(self, request: janitor_pb2.ScheduleDeletionsRequest,
                                context: grpc.aio.ServicerContext) -> janitor_pb2.ScheduleDeletionsResponse:
        results = await self.janitor.schedule_deletions([_deletion(item) for item in request.deletions])
        return janitor_pb2.ScheduleDeletionsResponse(results=[_scheduled(scheduled) for scheduled in results])

    @unary_errors
    async def CancelDeletion(self, request: janitor_pb2.CancelDeletionRequest,
                             context: grpc.aio.ServicerContext) -> janitor_pb2.CancelDeletionResponse:
        cancelled = await self.janitor.cancel_deletion(request.bucket, request.object_key)
        return janitor_pb2.CancelDeletionResponse(cancelled=cancelled)

    @unary_errors
    async def ListPending(self, request: janitor_pb2.ListPendingRequest,
                          context: grpc.aio.ServicerContext) -> janitor_pb2.ListPendingResponse:
        page = await self.janitor.list_pending(dead_letter=request.dead_letter, page_size=request.page_size,
                                               page_token=request.page_token)
        return janitor_pb2.ListPendingResponse(
            deletions=[janitor_pb2.PendingDeletion(bucket=entry.bucket, object_key=entry.key,
                                                   delete_at=_timestamp(entry.due), attempts=entry.attempts,
                                                   last_error=entry.last_error) for entry in page.entries],
            next_page_token=page.next_token, total=page.total)

    @unary_errors
    async def RunSweep(self, request: janitor_pb2.RunSweepRequest,
                       context: grpc.aio.ServicerContext) -> janitor_pb2.RunSweepResponse:
        report = await self.janitor.run_sweep()
        return janitor_pb2.RunSweepResponse(objects_deleted=report.objects.deleted,
                                            objects_failed=report.objects.failed,
                                            temp_files_removed=report.temp.files_removed,
                                            temp_bytes_freed=report.temp.bytes_freed)
