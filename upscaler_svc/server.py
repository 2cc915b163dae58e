"""Wiring: the gRPC host, the upscale service (engines, queue), object storage and the janitor client."""

from __future__ import annotations

from mesh.config import S3Settings
from mesh.janitor_client import JanitorClient
from mesh.server import ServiceHost
from mesh.storage import ObjectStore
from mesh.v1 import upscaler_pb2, upscaler_pb2_grpc
from upscaler_svc.config import UpscalerSettings
from upscaler_svc.jobs import UpscaleService
from upscaler_svc.servicer import UpscalerServicer


class UpscalerServer:
    """Serves at once with health NOT_SERVING, and turns SERVING once the default model is loaded."""

    def __init__(self, settings: UpscalerSettings, s3_settings: S3Settings) -> None:
        self.settings = settings
        janitor = JanitorClient(settings.janitor_addr)
        self.service = UpscaleService(settings, ObjectStore(s3_settings), janitor)
        self.host = ServiceHost(settings.host, settings.port, settings.drain_seconds)
        self.host.add_service(upscaler_pb2.DESCRIPTOR.services_by_name["Upscaler"],
                              upscaler_pb2_grpc.add_UpscalerServicer_to_server,
                              UpscalerServicer(self.service))

    async def start(self) -> int:
        """Bind, load the default model, then report SERVING; returns the port."""
        port = await self.bind()
        await self.load()
        return port

    async def bind(self) -> int:
        """Start answering (health NOT_SERVING); returns the port."""
        return await self.host.start()

    async def load(self) -> None:
        """Load the default model and report SERVING."""
        await self.service.start()
        await self.host.set_serving(True)

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let running jobs finish within the grace period, then free the engines."""
        await self.host.stop(grace)
        await self.service.close()
