"""Wiring: the compress service (queue, storage) behind mesh.v1.Compressor."""

from __future__ import annotations

from compressor_svc.config import CompressorSettings
from compressor_svc.service import CompressService
from compressor_svc.servicer import CompressorServicer
from mesh.config import S3Settings
from mesh.server import MediaServer
from mesh.storage import ObjectStore
from mesh.v1 import compressor_pb2, compressor_pb2_grpc


class CompressorServer(MediaServer):
    """Serving starts NOT_SERVING; it turns SERVING once ffmpeg's encoders and the bucket are confirmed."""

    def __init__(self, settings: CompressorSettings, s3_settings: S3Settings) -> None:
        super().__init__(settings)
        self.settings = settings
        self.service = CompressService(settings, ObjectStore(s3_settings), self.janitor)
        self.host.add_service(compressor_pb2.DESCRIPTOR.services_by_name["Compressor"],
                              compressor_pb2_grpc.add_CompressorServicer_to_server, CompressorServicer(self.service))
