"""`python -m upscaler_svc` / `upscaler-svc`: the upscaler process (UPSCALER_*, JANITOR_ADDR, S3_*)."""

from __future__ import annotations

from mesh.config import S3Settings, load_settings
from mesh.server import run_service
from upscaler_svc.config import UpscalerSettings
from upscaler_svc.server import UpscalerServer

SERVICE = "upscaler"


async def serve(settings: UpscalerSettings, s3_settings: S3Settings) -> None:
    server = UpscalerServer(settings, s3_settings)
    await server.start()
    await server.host.serve_until_signal(on_shutdown=server.service.close)


def main() -> None:
    settings = load_settings(UpscalerSettings)
    s3_settings = load_settings(S3Settings)
    run_service(SERVICE, settings.log_level, lambda: serve(settings, s3_settings))


if __name__ == "__main__":
    main()
