"""Settings shared by every service: pydantic-settings with a per-service env prefix and `.env` support.

A bad value stops the process at start with one line per problem, naming the environment variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mesh.sources import SourceLimits, SourcePolicy

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

DEFAULT_MAX_CONNECTION_AGE_SECONDS = 300.0


class ConfigError(SystemExit):
    """Raised (and exits the process) when the environment holds an invalid setting."""


class ServiceSettings(BaseSettings):
    """Listener settings; subclasses set `env_prefix` (JANITOR_, UPSCALER_, ...) and the default port."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", validate_default=True)

    host: str = Field("0.0.0.0", description="bind address")
    port: int = Field(0, ge=0, le=65535, description="gRPC port (0 picks a free one)")
    drain_seconds: float = Field(10.0, ge=0, le=600, description="grace period for in-flight calls on SIGTERM")
    max_connection_age_seconds: float = Field(
        DEFAULT_MAX_CONNECTION_AGE_SECONDS, ge=1, le=24 * 3600,
        description="clients reconnect (and re-resolve DNS) after this; calls in flight are not cut")
    log_level: str = Field("INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")


GIB = 1 << 30


class MediaServiceSettings(ServiceSettings):
    """What every media service (upscaler, compressor) sets the same way, under its own prefix: where
    sources may come from and how big they may be, the job queue, temp space, and how results are stored."""

    janitor_addr: str = Field("127.0.0.1:29117", pattern=r"^[\w.\-\[\]:]+:\d+$",
                              validation_alias=AliasChoices("JANITOR_ADDR", "janitor_addr"),
                              description="host:port of the janitor that deletes stored results")
    allow_loopback_sources: bool = Field(False, description="also fetch sources from loopback (local demos, tests)")
    source_allowlist: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="comma-separated host names or CIDRs fetched from even when not public")
    max_source_bytes: int = Field(4 * GIB, gt=0, description="largest source download")
    fetch_timeout_seconds: float = Field(300.0, gt=0, le=3600, description="total time for the download")
    max_dimension: int = Field(8192, ge=16, le=16384, description="largest source width or height")
    concurrency: int = Field(1, ge=1, le=64, description="jobs running at once")
    queue_size: int = Field(4, ge=0, le=1000, description="jobs waiting beyond the running ones; more: Busy")
    work_dir: Path | None = Field(None, description="downloads and outputs in flight (default: system temp)")
    presign_seconds: int | None = Field(None, ge=60, le=7 * 24 * 3600,
                                        description="result URL lifetime (default: S3_PRESIGN_SECONDS)")
    delete_after_seconds: float | None = Field(
        None, gt=0, le=30 * 24 * 3600, description="delete results this long after upload (default: URL "
                                                    "lifetime + 600 s, the subnet's own sweep rule)")

    @field_validator("source_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("source_allowlist")
    @classmethod
    def _allowlist_entries_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        SourcePolicy.build(False, value)
        return value

    def source_limits(self, max_seconds: float = 0.0) -> SourceLimits:
        """The SSRF policy and caps `mesh.sources.fetch_source` enforces for this service."""
        return SourceLimits(SourcePolicy.build(self.allow_loopback_sources, self.source_allowlist),
                            self.max_source_bytes, self.fetch_timeout_seconds, self.max_dimension, max_seconds)


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


# A validator raising PydanticCustomError(WITHHELD_INPUT, ...) keeps the bad value (it may hold a credential)
# out of the start-up error.
WITHHELD_INPUT = "withheld_input"


def load_settings(cls: type[SettingsT], **overrides: object) -> SettingsT:
    """Build settings from the environment, or exit with a message naming each bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid configuration ({cls.__name__}):"]
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            got = "value withheld" if error["type"] == WITHHELD_INPUT else f"got {error.get('input')!r}"
            lines.append(f"  {prefix}{name}: {error['msg']} ({got})")
        raise ConfigError("\n".join(lines)) from None
