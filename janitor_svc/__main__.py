"""`python -m janitor_svc` / `janitor-svc`: the janitor process (JANITOR_*, REDIS_URL, S3_* settings)."""

from __future__ import annotations

from janitor_svc.config import JanitorSettings
from janitor_svc.server import JanitorServer
from mesh.config import RedisSettings, S3Settings, load_settings
from mesh.server import run_service

SERVICE = "janitor"


async def serve(settings: JanitorSettings, redis_settings: RedisSettings, s3_settings: S3Settings) -> None:
    server = JanitorServer(settings, redis_settings, s3_settings)
    await server.start()
    await server.host.serve_until_signal(on_shutdown=server.close_background)


def main() -> None:
    settings = load_settings(JanitorSettings)
    redis_settings = load_settings(RedisSettings)
    s3_settings = load_settings(S3Settings)
    run_service(SERVICE, settings.log_level, lambda: serve(settings, redis_settings, s3_settings))


if __name__ == "__main__":
    main()
