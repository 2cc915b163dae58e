"""Wiring: the gRPC host with the Compressor servicer, the object store, the janitor client, the job queue."""

from __future__ import annotations

import asyncio
import logging

from compressor_svc.config import CompressorSettings
from compressor_svc.encoders import CODECS, select_encoder
from compressor_svc.jobs import JobSlots
from compressor_svc.servicer import CompressorServicer
from mesh.config import S3Settings
from mesh.errors import DependencyUnavailable
from mesh.ffmpeg import encoders
from mesh.janitor_client import JanitorClient
from mesh.server import ServiceHost
from mesh.storage import ObjectStore
from mesh.v1 import compressor_pb2, compressor_pb2_grpc

log = logging.getLogger(__name__)

REQUIRED_ENCODERS = ("libsvtav1", "libx265", "libx264", "libvpx-vp9")


class CompressorServer:
    """Serving starts NOT_SERVING; it turns SERVING once ffmpeg's encoders (NVENC probed once, here) and the
    bucket are confirmed."""

    def __init__(self, settings: CompressorSettings, s3_settings: S3Settings) -> None:
        self.settings = settings
        self.store = ObjectStore(s3_settings)
        self.janitor = JanitorClient(settings.janitor_addr)
        self.slots = JobSlots(settings.max_concurrent_jobs, settings.max_queued_jobs)
        self.host = ServiceHost(settings.host, settings.port, settings.drain_seconds)
        self.host.add_service(compressor_pb2.DESCRIPTOR.services_by_name["Compressor"],
                              compressor_pb2_grpc.add_CompressorServicer_to_server,
                              CompressorServicer(settings, self.store, self.janitor, self.slots))

    async def start(self) -> int:
        """Bind, check the dependencies, then report SERVING; returns the bound port."""
        port = await self.host.start()
        missing = [name for name in REQUIRED_ENCODERS if name not in await asyncio.to_thread(encoders)]
        if missing:
            raise DependencyUnavailable(f"ffmpeg lacks the encoders {', '.join(missing)}")
        hardware = self.settings.allow_hardware_encoders
        chosen = [await asyncio.to_thread(select_encoder, codec, allow_hardware=hardware) for codec in CODECS]
        log.info("encoders", extra={"encoders": {encoder.codec: encoder.name for encoder in chosen}})
        await asyncio.to_thread(self.store.ensure_bucket)
        self.settings.work_dir.mkdir(parents=True, exist_ok=True)
        await self.host.set_serving(True)
        return port

    async def stop(self, grace: float | None = None) -> None:
        await self.host.stop(grace)
        await self.close()

    async def close(self) -> None:
        await self.janitor.close()
