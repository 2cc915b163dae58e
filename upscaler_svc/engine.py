"""What every inference engine is: one network, batches of RGB frames in, upscaled frames out.

Every engine has the same life cycle, `load()` → `infer(batch, scale)` … → `close()`, and takes its
`EngineOptions`. The engines themselves live beside this module (`cpu_engine`, `cuda_engine`) and are chosen
by name or automatically in `engine_registry`; this module holds only what they share, so a new engine
starts here.

`TiledEngine` holds what every engine shares, written on torch tensors so a GPU engine reuses it: the
10-px reflect pre-padding the ncnn wrapper applies (edges match Video2X), tiling with overlap for frames
that do not fit, the ×4 → ×2 downscale, and rounding back to 8 bits. A subclass only runs the network.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from mesh.errors import InvalidInput
from upscaler_svc.weights import Checkpoint

PRE_PAD = 10
Downscale = Literal["antialias", "video2x-parity"]
CpuPrecision = Literal["fp32", "int8"]
CpuBackend = Literal["auto", "torch", "onnxruntime", "openvino"]


@dataclass(frozen=True)
class EngineOptions:
    """How frames are fed to the network.

    `tile_size` is the largest tile side in input pixels (0: by architecture); `tile_overlap` is the context
    each tile borrows from its neighbours (animevideov3 sees 18 px, 19 after the x2 bicubic, so 24 makes
    its tiles seamless).
    `downscale` picks the ×4 → ×2 filter: plain bicubic reproduces Video2X's ncnn x2 graph exactly;
    antialiased bicubic avoids aliasing.
    `cpu_precision` int8 runs the CPU engine as an OpenVINO model quantised (NNCF, post-training) on frames
    of `int8_calibration`, a video like the ones it will upscale: ~1.8x faster than fp32 here, 37-46 dB PSNR
    from the fp32 output (the benchmark prints both). fp32 stays the default: it is exact."""

    tile_size: int = 0
    tile_overlap: int = 24
    downscale: Downscale = "antialias"
    cpu_backend: CpuBackend = "auto"
    threads: int = 0
    cpu_precision: CpuPrecision = "fp32"
    int8_calibration: Path | None = None


DEFAULT_TILE = {"SRVGGNetCompact": 1024, "RRDBNet": 256}


class Engine(ABC):
    """Runs one Real-ESRGAN network. `infer` takes N×H×W×3 uint8 RGB and returns N×(H·s)×(W·s)×3."""

    kind: str = ""

    def __init__(self, checkpoint: Checkpoint, options: EngineOptions) -> None:
        self.checkpoint = checkpoint
        self.options = options

    @property
    def network_scale(self) -> int:
        return self.checkpoint.scale

    def check_scale(self, scale: int) -> None:
        if scale not in (2, 4) or scale > self.network_scale:
            raise InvalidInput(f"scale {scale} is not available from a x{self.network_scale} network "
                               f"(supported: 2 or 4, at most the network's own scale)")

    @abstractmethod
    def load(self) -> None:
        """Prepare the network on its device (may take seconds); call once before `infer`."""

    @abstractmethod
    def infer(self, batch: np.ndarray, scale: int, cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        """Upscale a batch of same-sized frames. `cancelled` is polled between tiles and inside the network
        where the backend allows it; a true answer raises Cancelled."""

    @abstractmethod
    def close(self) -> None:
        """Free the network and its device memory."""

    def describe(self) -> str:
        return self.kind


class Cancelled(Exception):
    """Inference stopped because its job was cancelled."""


def tile_spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, length) into near-equal spans of at most `tile`."""
    count = max(1, math.ceil(length / tile))
    step = math.ceil(length / count)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


class TiledEngine(Engine):
    """Pre-padding, tiling, resampling and quantisation around a subclass's `_forward` on `device`."""

    device = torch.device("cpu")

    @abstractmethod
    def _forward(self, x: torch.Tensor, cancelled: Callable[[], bool] | None) -> torch.Tensor:
        """Run the network on float N×3×h×w in [0, 1] on `device`; returns N×3×(h·S)×(w·S). Raises
        Cancelled soon after `cancelled()` turns true, even inside one large tile."""

    def _tile_size(self) -> int:
        return self.options.tile_size or DEFAULT_TILE[self.checkpoint.arch]

    @torch.inference_mode()
    def infer(self, batch: np.ndarray, scale: int, cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        self.check_scale(scale)
        frames = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2)
        n, _, height, width = frames.shape
        padded = F.pad(frames.float().div_(255.0), (PRE_PAD,) * 4, mode="reflect")
        out = torch.empty((n, 3, height * scale, width * scale), dtype=torch.uint8, device=self.device)
        overlap, tile = self.options.tile_overlap, self._tile_size()
        for y0, y1 in tile_spans(height, tile):
            for x0, x1 in tile_spans(width, tile):
                if cancelled is not None and cancelled():
                    raise Cancelled()
                # Tile plus context, in padded coordinates (the pre-padding is context for edge tiles).
                top, left = max(y0 - overlap, 0), max(x0 - overlap, 0)
                bottom = min(y1 + overlap, height) + 2 * PRE_PAD
                right = min(x1 + overlap, width) + 2 * PRE_PAD
                network_out = self._forward(padded[:, :, top:bottom, left:right], cancelled)
                upscaled = self._resample(network_out, scale)
                oy, ox = (y0 + PRE_PAD - top) * scale, (x0 + PRE_PAD - left) * scale
                core = upscaled[:, :, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
                out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = core.clamp_(0, 1).mul_(255).round_()
        return out.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def _resample(self, upscaled: torch.Tensor, scale: int) -> torch.Tensor:
        factor = scale / self.network_scale
        if factor == 1:
            return upscaled
        antialias = self.options.downscale == "antialias"
        return F.interpolate(upscaled, scale_factor=factor, mode="bicubic", align_corners=False,
                             antialias=antialias)
