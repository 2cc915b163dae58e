"""COMPRESSOR_* settings (plus JANITOR_ADDR for the peer): listener, source caps, quality margins, queue."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from compressor_svc.pipeline import CompressOptions
from mesh.config import ServiceSettings

GIB = 1 << 30


class CompressorSettings(ServiceSettings):
    """Every field is read from COMPRESSOR_<NAME> (or `.env`); a bad value stops the process at start."""

    model_config = SettingsConfigDict(env_prefix="COMPRESSOR_", env_file=".env", extra="ignore",
                                      validate_default=True, populate_by_name=True)

    port: int = Field(29116, ge=0, le=65535)
    janitor_addr: str = Field("127.0.0.1:29117", pattern=r"^[\w.\-\[\]:]+:\d+$",
                              validation_alias=AliasChoices("JANITOR_ADDR", "janitor_addr"),
                              description="host:port of the janitor service")
    allow_private_sources: bool = Field(False,
                                        description="accept loopback/private source URLs (tests, local demo)")
    max_source_bytes: int = Field(4 * GIB, gt=0, description="largest source download accepted")
    max_source_seconds: float = Field(900.0, gt=0, description="longest source accepted")
    max_dimension: int = Field(8192, ge=16, le=16384, description="largest source width or height")
    download_timeout_seconds: float = Field(300.0, gt=0, le=3600)
    work_dir: Path = Field(Path("/tmp/vidaio-compressor"), description="per-job temp directories go here")
    vmaf_margin: float = Field(0.3, ge=0, le=5,
                               description="VMAF-NEG points over the threshold the output must reach")
    prediction_margin: float = Field(0.2, ge=0, le=5,
                                     description="extra points the search aims for over the margin")
    max_probes_per_scene: int = Field(5, ge=1, le=12)
    max_scenes: int = Field(24, ge=1, le=200)
    refine_passes: int = Field(2, ge=0, le=5,
                               description="re-encodes of scenes that pull the whole under target")
    allow_hardware_encoders: bool = Field(True, description="use NVENC where it really opens on this machine")
    threads: int = Field(0, ge=0, le=256, description="encoder/VMAF threads per job; 0 = all cores")
    parallel_encodes: int = Field(1, ge=1, le=32, description="scenes probed/encoded at once within a job")
    max_concurrent_jobs: int = Field(1, ge=1, le=64)
    max_queued_jobs: int = Field(4, ge=0, le=1000,
                                 description="jobs waiting for a slot; more get RESOURCE_EXHAUSTED")
    default_budget_seconds: float = Field(600.0, gt=0,
                                          description="time budget when a call carries no deadline")
    deadline_reserve_seconds: float = Field(
        3.0, ge=0, le=120, description="kept back from the deadline for upload, presign, janitor")
    upload_mbytes_per_second: float = Field(50.0, gt=0,
                                            description="assumed upload speed when reserving time")
    presign_seconds: int = Field(0, ge=0, le=7 * 24 * 3600,
                                 description="result URL lifetime; 0 uses S3_PRESIGN_SECONDS")
    delete_grace_seconds: int = Field(600, ge=0, le=7 * 24 * 3600,
                                      description="the object is deleted this long after its URL expires")
    object_prefix: str = Field("processing/compression", pattern=r"^[\w\-/]*$")

    def compress_options(self, preset: str | None = None) -> CompressOptions:
        """The core's options from these settings; `preset` forces one instead of planning it."""
        return CompressOptions(vmaf_margin=self.vmaf_margin, prediction_margin=self.prediction_margin,
                               max_probes_per_scene=self.max_probes_per_scene, max_scenes=self.max_scenes,
                               refine_passes=self.refine_passes, preset=preset,
                               allow_hardware=self.allow_hardware_encoders,
                               threads=self.threads or os.cpu_count() or 1, parallel=self.parallel_encodes)
