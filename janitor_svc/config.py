"""JANITOR_* settings: the listener, the deletion schedule's lease and retry policy, and the temp sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from mesh.config import ServiceSettings

DAY = 24 * 3600


class JanitorSettings(ServiceSettings):
    """Every field is read from JANITOR_<NAME> (or `.env`); a bad value stops the process at start."""

    model_config = SettingsConfigDict(env_prefix="JANITOR_", env_file=".env", extra="ignore",
                                      validate_default=True)

    port: int = Field(29117, ge=0, le=65535)
    lease_seconds: float = Field(120.0, ge=0.2, le=3600,
                                 description="a claimed deletion is re-claimable after this long; must exceed "
                                             "the S3 request timeout (60 s) in production")
    max_attempts: int = Field(8, ge=1, le=100, description="failed deletes before the item is dead-lettered")
    backoff_seconds: float = Field(2.0, gt=0, le=3600, description="first retry delay; doubles per attempt")
    backoff_max_seconds: float = Field(600.0, gt=0, le=DAY, description="cap on the retry delay")
    batch_size: int = Field(200, ge=1, le=1000, description="due items claimed and deleted per S3 request")
    delete_concurrency: int = Field(8, ge=1, le=64, description="S3 batch deletes in flight at once")
    idle_poll_seconds: float = Field(0.25, gt=0, le=5,
                                     description="longest sleep while nothing is due (other replicas' schedules)")
    max_delay_seconds: float = Field(30 * DAY, gt=0, le=365 * DAY, description="longest accepted delay")
    health_interval_seconds: float = Field(2.0, gt=0, le=60, description="Redis and S3 probe period")
    temp_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="work directories to sweep (comma-separated in the environment)")
    temp_ttl_seconds: float = Field(6 * 3600, gt=0, le=365 * DAY, description="temp files older than this go")
    temp_quota_bytes: int = Field(0, ge=0, description="oldest temp files go beyond this total; 0 = no quota")
    temp_grace_seconds: float = Field(120.0, ge=0, le=DAY,
                                      description="files modified this recently are never swept (in use)")
    sweep_interval_seconds: float = Field(300.0, gt=0, le=DAY, description="temp sweep period")

    @field_validator("temp_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("temp_dirs")
    @classmethod
    def _absolute_dirs(cls, value: list[Path]) -> list[Path]:
        relative = [str(path) for path in value if not path.is_absolute()]
        if relative:
            raise ValueError(f"temp directories must be absolute paths: {', '.join(relative)}")
        if any(path == Path("/") for path in value):
            raise ValueError("refusing to sweep the root directory")
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> JanitorSettings:
        if self.backoff_max_seconds < self.backoff_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_seconds")
        return self
