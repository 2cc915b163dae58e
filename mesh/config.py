"""Settings shared by every service: pydantic-settings with a per-service env prefix and `.env` support.

A bad value stops the process at start with one line per problem, naming the environment variable.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class ConfigError(SystemExit):
    """Raised (and exits the process) when the environment holds an invalid setting."""


class ServiceSettings(BaseSettings):
    """Listener settings; subclasses set `env_prefix` (JANITOR_, UPSCALER_, ...) and the default port."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", validate_default=True)

    host: str = Field("0.0.0.0", description="bind address")
    port: int = Field(0, ge=0, le=65535, description="gRPC port (0 picks a free one)")
    drain_seconds: float = Field(10.0, ge=0, le=600, description="grace period for in-flight calls on SIGTERM")
    log_level: str = Field("INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")


class RedisSettings(BaseSettings):
    """REDIS_URL: where the janitor schedule and the gateway's jobs live."""

    model_config = SettingsConfigDict(env_prefix="REDIS_", env_file=".env", extra="ignore")

    url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|unix)://")


class S3Settings(BaseSettings):
    """S3_*: the object store results are uploaded to (MinIO, AWS S3, Backblaze B2, SeaweedFS)."""

    model_config = SettingsConfigDict(env_prefix="S3_", env_file=".env", extra="ignore")

    endpoint: str = Field("127.0.0.1:9000", description="host:port, no scheme")
    access_key: str = ""
    secret_key: str = ""
    bucket: str = Field("vidaio-mesh", min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]+$")
    secure: bool = False
    region: str = "us-east-1"
    public_endpoint: str = Field("", description="host:port validators download from, when it differs from endpoint")
    public_secure: bool | None = Field(None, description="https for public_endpoint (default: same as secure)")
    presign_seconds: int = Field(6 * 3600, ge=60, le=7 * 24 * 3600,
                                 description="presigned URL lifetime (validators may fetch late)")


def load_settings(cls: type[SettingsT], **overrides: object) -> SettingsT:
    """Build settings from the environment, or exit with a message naming each bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid configuration ({cls.__name__}):"]
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            lines.append(f"  {prefix}{name}: {error['msg']} (got {error.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None
