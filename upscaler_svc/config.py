"""UPSCALER_* settings: the media-service settings (mesh.config), plus model and engine, output limits and
encoder quality."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mesh.codecs import CPU_ENCODERS
from mesh.config import MediaServiceSettings
from upscaler_svc.encode import EncoderSettings
from upscaler_svc.engine import CpuBackend, CpuPrecision, EngineOptions
from upscaler_svc.engine_registry import ENGINES
from upscaler_svc.pipeline import PipelineLimits
from upscaler_svc.weights import default_cache_dir


class UpscalerSettings(MediaServiceSettings):
    """Every field is read from UPSCALER_<NAME> (or `.env`); the janitor address from JANITOR_ADDR."""

    model_config = SettingsConfigDict(env_prefix="UPSCALER_", env_file=".env", extra="ignore",
                                      validate_default=True, populate_by_name=True)

    port: int = Field(29115, ge=0, le=65535)
    max_output_side: int = Field(8192, ge=64, le=16384, description="longest output side (HEVC 6.2: 8192)")
    max_frames: int = Field(36_000, ge=1, description="longest source, in frames")

    model: str = Field("realesr-animevideov3", description="model name or official .pth/.safetensors path")
    engine: str = Field("auto", description="auto, or a registered engine: cpu, cuda")
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

    x265_preset: str = Field("fast", description="one of the shared encoder table's x265 presets")
    x265_crf: int = Field(22, ge=0, le=51)
    svtav1_preset: int = Field(8, description="one of the shared encoder table's SVT-AV1 presets")
    svtav1_crf: int = Field(30, ge=1, le=63)
    nvenc_preset: str = Field("p5", pattern=r"^p[1-7]$")
    nvenc_cq: int = Field(24, ge=1, le=51)
    use_nvenc: bool = Field(True, description="use hevc_nvenc/av1_nvenc where the GPU really has them")

    key_prefix: str = Field("upscaled", pattern=r"^[a-z0-9][a-z0-9/_\-]*$")

    @field_validator("engine")
    @classmethod
    def _engine_is_registered(cls, value: str) -> str:
        if value != "auto" and value not in ENGINES:
            raise ValueError(f"unknown engine {value!r}: auto or one of {', '.join(sorted(ENGINES))}")
        return value

    @field_validator("x265_preset", "svtav1_preset")
    @classmethod
    def _preset_in_encoder_table(cls, value: str | int, info) -> str | int:
        presets = CPU_ENCODERS["hevc" if info.field_name == "x265_preset" else "av1"].presets
        if str(value) not in presets:
            raise ValueError(f"preset {value!r} is not one of {', '.join(presets)}")
        return value

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
