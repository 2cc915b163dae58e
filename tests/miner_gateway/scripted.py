"""Small real gRPC servers implementing the Upscaler and Compressor contracts, scripted by the source URL.

The first path segment of `source_url` says what the server does: `ok` (progress, then a result), `slow`
(progress for a while, then a result), `fail` (INVALID_ARGUMENT), `busy` (RESOURCE_EXHAUSTED before any
event), `down` (UNAVAILABLE before any event), `hang` (progress, then nothing until cancelled), `hold`
(waits for `release`, then a result) and `noresult` (the stream closes without a result). A replica whose
`refuse` is set answers every call with that status before any event (a full queue, a broken replica).
`dual_stack` starts a pair of any servers on one port, on 127.0.0.1 and [::1] (both `localhost` to gRPC).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlparse

import grpc

from mesh.server import ServiceHost
from mesh.v1 import common_pb2, compressor_pb2, compressor_pb2_grpc, upscaler_pb2, upscaler_pb2_grpc


def result_url(job_id: str) -> str:
    return f"https://results.test/{job_id}.mp4"


@dataclass
class Script:
    """What one scripted server saw: requests, the trace context of each call, cancellations."""

    name: str = ""
    requests: list = field(default_factory=list)
    traceparents: list = field(default_factory=list)
    cancelled: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    refuse: grpc.StatusCode | None = None

    def sources(self) -> list[str]:
        return [request.source_url for request in self.requests]

    async def play(self, request, context: grpc.aio.ServicerContext, progress, result):
        self.requests.append(request)
        self.traceparents.append(dict(context.invocation_metadata()).get("traceparent"))
        behaviour = urlparse(request.source_url).path.strip("/").split("/")[0]
        if self.refuse is not None:
            await context.abort(self.refuse, f"{self.name} refuses")
        if behaviour == "busy":
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
        if behaviour == "down":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "storage unreachable")
        yield progress(common_pb2.Progress(stage="queued", message=self.name))
        try:
            if behaviour == "fail":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a video")
            if behaviour == "hang":
                await asyncio.Event().wait()
            if behaviour == "hold":
                await self.release.wait()
            if behaviour == "slow":
                for done in range(1, 4):
                    await asyncio.sleep(0.1)
                    yield progress(common_pb2.Progress(stage="upscale", done=done, total=3, unit="frames"))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        yield progress(common_pb2.Progress(stage="upload", done=1, total=1))
        if behaviour != "noresult":
            yield result(common_pb2.StoredObject(presigned_url=result_url(request.job_id)))


class ScriptedUpscaler(upscaler_pb2_grpc.UpscalerServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def Upscale(self, request, context):
        async for event in self.script.play(
            request,
            context,
            lambda p: upscaler_pb2.UpscaleEvent(progress=p),
            lambda o: upscaler_pb2.UpscaleEvent(result=upscaler_pb2.UpscaleResult(output=o)),
        ):
            yield event


class ScriptedCompressor(compressor_pb2_grpc.CompressorServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def Compress(self, request, context):
        async for event in self.script.play(
            request,
            context,
            lambda p: compressor_pb2.CompressEvent(progress=p),
            lambda o: compressor_pb2.CompressEvent(result=compressor_pb2.CompressResult(output=o)),
        ):
            yield event


@dataclass
class Backend:
    """One scripted replica serving both contracts, with gRPC health."""

    host: ServiceHost
    script: Script
    bind: str = "127.0.0.1"

    @property
    def address(self) -> str:
        return f"{self.bind}:{self.host.port}"


async def start_backend(name: str = "backend", serving: bool = True, *, bind: str = "127.0.0.1", port: int = 0,
                        max_connection_age_seconds: float = 300.0) -> Backend:
    """`bind` is an address as gRPC writes it (`[::1]` for IPv6 loopback)."""
    script = Script(name=name)
    host = ServiceHost(bind, port, drain_seconds=0, max_connection_age_seconds=max_connection_age_seconds)
    host.add_service(
        upscaler_pb2.DESCRIPTOR.services_by_name["Upscaler"],
        upscaler_pb2_grpc.add_UpscalerServicer_to_server,
        ScriptedUpscaler(script),
    )
    host.add_service(
        compressor_pb2.DESCRIPTOR.services_by_name["Compressor"],
        compressor_pb2_grpc.add_CompressorServicer_to_server,
        ScriptedCompressor(script),
    )
    await host.start()
    await host.set_serving(serving)
    return Backend(host, script, bind)


async def dual_stack(start) -> tuple:
    """Start `start(bind, port)` on 127.0.0.1 (a free port) and on [::1] at the same port; retried when
    something else holds that port on ::1."""
    for _ in range(10):
        first = await start("127.0.0.1", 0)
        try:
            return first, await start("[::1]", first.port)
        except (OSError, RuntimeError):
            await first.stop()
    raise OSError("no port was free on both 127.0.0.1 and ::1")
