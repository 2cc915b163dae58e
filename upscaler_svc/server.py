"""Wiring: the upscale service (engines, queue, storage) behind mesh.v1.Upscaler."""

from __future__ import annotations

from mesh.config import S3Settings
from mesh.server import MediaServer
from mesh.storage import ObjectStore
from mesh.v1 import upscaler_pb2, upscaler_pb2_grpc
from upscaler_svc.config import UpscalerSettings
from upscaler_svc.service import UpscaleService
from upscaler_svc.servicer import UpscalerServicer


class UpscalerServer(MediaServer):
    """Serves at once with health NOT_SERVING, and turns SERVING once the default model is loaded."""

    def __init__(self, settings: UpscalerSettings, s3_settings: S3Settings) -> None:
        super().__init__(settings)
        self.service = UpscaleService(settings, ObjectStore(s3_settings), self.janitor)
        self.host.add_service(upscaler_pb2.DESCRIPTOR.services_by_name["Upscaler"],
                              upscaler_pb2_grpc.add_UpscalerServicer_to_server, UpscalerServicer(self.service))
