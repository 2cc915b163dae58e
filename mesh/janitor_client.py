"""A small async client the upscaler and compressor use to schedule deletions through the Janitor's API."""

from __future__ import annotations

import datetime as dt

import grpc

from mesh.errors import DependencyUnavailable
from mesh.rpc import duration
from mesh.telemetry import client_span
from mesh.v1 import janitor_pb2, janitor_pb2_grpc

SCHEDULE_DELETION = "/mesh.v1.Janitor/ScheduleDeletion"


class JanitorClient:
    """Schedules deletions; every call has a deadline, and failures surface as UNAVAILABLE."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = janitor_pb2_grpc.JanitorStub(self._channel)

    async def schedule(self, bucket: str, key: str, delay_seconds: float) -> dt.datetime:
        request = janitor_pb2.ScheduleDeletionRequest(
            bucket=bucket, object_key=key, delay=duration(delay_seconds))
        try:
            with client_span(SCHEDULE_DELETION) as metadata:
                reply = await self._stub.ScheduleDeletion(request, timeout=self.timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise DependencyUnavailable(f"janitor at {self.address} could not schedule the deletion: "
                                        f"{exc.code().name}: {exc.details()}") from exc
        return reply.delete_at.ToDatetime(tzinfo=dt.UTC)

    async def close(self) -> None:
        await self._channel.close()
