"""COMPRESSOR_* settings: the media-service settings (mesh.config), plus quality margins, search effort and
time planning."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from compressor_svc.job import CompressOptions, operating_offset
from mesh.config import MediaServiceSettings


class CompressorSettings(MediaServiceSettings):
    """Every field is read from COMPRESSOR_<NAME> (or `.env`); a bad value stops the process at start."""

    model_config = SettingsConfigDict(env_prefix="COMPRESSOR_", env_file=".env", extra="ignore",
                                      validate_default=True, populate_by_name=True)

    port: int = Field(29116, ge=0, le=65535)
    max_source_seconds: float = Field(900.0, gt=0, description="longest source accepted")
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
    default_budget_seconds: float = Field(600.0, gt=0,
                                          description="time budget when a call carries no deadline")
    deadline_reserve_seconds: float = Field(
        3.0, ge=0, le=120, description="kept back from the deadline for upload, presign, janitor")
    upload_mbytes_per_second: float = Field(50.0, gt=0,
                                            description="assumed upload speed when reserving time")
    key_prefix: str = Field("processing/compression", pattern=r"^[\w\-/]*$")
    organic_budget_seconds: float = Field(
        600.0, gt=0, le=3600, description="most time an organic job may take (synthetic work goes first)")

    def compress_options(self, preset: str | None = None, operator_seed: str = "") -> CompressOptions:
        """The core's options from these settings; `preset` forces one instead of planning it, and
        `operator_seed` (the miner's hotkey) sets this miner's operating point."""
        return CompressOptions(vmaf_margin=self.vmaf_margin, prediction_margin=self.prediction_margin,
                               max_probes_per_scene=self.max_probes_per_scene, max_scenes=self.max_scenes,
                               refine_passes=self.refine_passes, preset=preset,
                               allow_hardware=self.allow_hardware_encoders,
                               threads=self.threads or os.cpu_count() or 1, parallel=self.parallel_encodes,
                               operating_offset=operating_offset(operator_seed))
