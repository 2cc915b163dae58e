"""UPSCALER_* settings: listener, model and engine, source limits, encoder quality, queue, storage policy."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from mesh.config import ServiceSettings
from upscaler_svc.encode import EncoderSettings
from upscaler_svc.engine import CpuBackend, CpuPrecision, EngineOptions
from upscaler_svc.pipeline import PipelineLimits
from upscaler_svc.weights import default_cache_dir

GIB = 1 << 30


class UpscalerSettings(ServiceSettings):
    """Every field is read from UPSCALER_<NAME> (or `.env`); the janitor address also from JANITOR_ADDR."""

    model_config = SettingsConfigDict(env_prefix="UPSCALER_", env_file=".env", extra="ignore",
                                      validate_default=True, populate_by_name=True)

    port: int = Field(29115, ge=0, le=65535)
    janitor_addr: str = Field("127.0.0.1:29117", min_length=3,
                              validation_alias=AliasChoices("UPSCALER_JANITOR_ADDR", "JANITOR_ADDR"),
                              description="host:port of the Janitor that deletes uploaded results")
    allow_private_sources: bool = Field(False, description="accept loopback/private source URLs (local use)")
    max_source_bytes: int = Field(2 * GIB, ge=1, description="largest source download")
    fetch_timeout_seconds: float = Field(300.0, gt=0, le=3600, description="total time for the download")
    max_output_side: int = Field(8192, ge=64, le=16384, description="longest output side (HEVC 6.2: 8192)")
    max_frames: int = Field(36_000, ge=1, description="longest source, in frames")

    model: str = Field("realesr-animevideov3", description="model name or official .pth/.safetensors path")
    engine: str = Field("auto", description="auto, cpu, cuda or tensorrt")
    cpu_backend: CpuBackend = Field(
        "auto", description="auto times torch channels_last, onnxruntime and OpenVINO at load, keeps the fastest")
    cpu_precision: CpuPrecision = Field(
        "fp32", description="int8: OpenVINO quantised on UPSCALER_INT8_CALIBRATION (~1.8x faster, 37-46 "
                            "dB PSNR from fp32)")
    int8_calibration: Path | None = Field(None, description="a video like the inputs, to calibrate int8")
    downscale: Literal["antialias", "video2x-parity"] = Field(
        "antialias", description="x4 network -> x2 filter; video2x-parity reproduces Video2X's ncnn x2 graph")
    tile_size: int = Field(0, ge=0, le=8192, description="largest tile side in input px (0: by architecture)")
    tile_overlap: int = Field(24, ge=0, le=256)
    batch_size: int = Field(2, ge=1, le=64, description="frames per inference call")
    threads: int = Field(0, ge=0, le=512, description="CPU inference threads (0: all cores)")
    queue_frames: int = Field(8, ge=1, le=256, description="frames buffered between decode, infer and encode")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="converted weights")
    work_dir: Path | None = Field(None, description="downloads and outputs in flight (default: system temp)")

    x265_preset: str = Field("fast", pattern=r"^(ultrafast|superfast|veryfast|faster|fast|medium|slow)$")
    x265_crf: int = Field(22, ge=0, le=51)
    svtav1_preset: int = Field(8, ge=0, le=13)
    svtav1_crf: int = Field(30, ge=1, le=63)
    nvenc_preset: str = Field("p5", pattern=r"^p[1-7]$")
    nvenc_cq: int = Field(24, ge=1, le=51)
    use_nvenc: bool = Field(True, description="use hevc_nvenc/av1_nvenc where the GPU really has them")

    concurrency: int = Field(1, ge=1, le=64, description="jobs upscaling at once")
    queue_size: int = Field(4, ge=0, le=1000, description="jobs waiting beyond the running ones; more: Busy")
    presign_seconds: int | None = Field(None, ge=60, le=7 * 24 * 3600,
                                        description="result URL lifetime (default: S3_PRESIGN_SECONDS)")
    delete_after_seconds: float | None = Field(
        None, gt=0, le=30 * 24 * 3600, description="delete results this long after upload (default: URL "
                                                    "lifetime + 600 s, the subnet's own sweep rule)")
    key_prefix: str = Field("upscaled", pattern=r"^[a-z0-9][a-z0-9/_\-]*$")

    @model_validator(mode="after")
    def _int8_is_complete(self) -> UpscalerSettings:
        if self.cpu_precision == "int8":
            if self.cpu_backend not in ("auto", "openvino"):
                raise ValueError(f"int8 runs on the openvino CPU backend, not {self.cpu_backend}")
            if self.int8_calibration is None:
                raise ValueError("int8 needs UPSCALER_INT8_CALIBRATION, a video like the inputs")
        return self

    def engine_options(self) -> EngineOptions:
        return EngineOptions(tile_size=self.tile_size, tile_overlap=self.tile_overlap,
                             downscale=self.downscale, cpu_backend=self.cpu_backend, threads=self.threads,
                             cpu_precision=self.cpu_precision, int8_calibration=self.int8_calibration)

    def encoder_settings(self) -> EncoderSettings:
        return EncoderSettings(x265_preset=self.x265_preset, x265_crf=self.x265_crf,
                               svtav1_preset=self.svtav1_preset, svtav1_crf=self.svtav1_crf,
                               nvenc_preset=self.nvenc_preset, nvenc_cq=self.nvenc_cq,
                               use_nvenc=self.use_nvenc)

    def limits(self) -> PipelineLimits:
        return PipelineLimits(max_output_side=self.max_output_side, max_frames=self.max_frames,
                              queue_frames=self.queue_frames, batch_size=self.batch_size)
