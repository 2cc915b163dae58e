"""`python -m compressor_svc` / `compressor-svc`: the compressor (COMPRESSOR_*, JANITOR_ADDR, S3_*)."""

from __future__ import annotations

from compressor_svc.config import CompressorSettings
from compressor_svc.server import CompressorServer
from mesh.config import S3Settings, load_settings
from mesh.server import run_service

SERVICE = "compressor"


async def serve(settings: CompressorSettings, s3_settings: S3Settings) -> None:
    server = CompressorServer(settings, s3_settings)
    await server.start()
    await server.host.serve_until_signal(on_shutdown=server.close)


def main() -> None:
    settings = load_settings(CompressorSettings)
    s3_settings = load_settings(S3Settings)
    run_service(SERVICE, settings.log_level, lambda: serve(settings, s3_settings))


if __name__ == "__main__":
    main()
