"""The `cuda` engine: the network on an NVIDIA GPU.

It is kept apart from the CPU engine because it needs nothing but torch (a GPU image may leave out the
CPU runtimes) and because the GPU work still to come (CUDA graphs, TensorRT) belongs here alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from upscaler_svc.engine import EngineOptions, TiledEngine
from upscaler_svc.weights import Checkpoint


class CudaEngine(TiledEngine):
    """The network in fp16, channels_last, on the GPU; the tiling, padding and resampling run there too.

    A first GPU engine so GPU machines do not fall back to the CPU. CUDA graphs or torch.compile, pinned
    buffers and copy/compute overlap, and TensorRT are the GPU issue's, to be measured on a GPU first."""

    kind = "cuda"
    device = torch.device("cuda")
    dtype = torch.float16

    def __init__(self, checkpoint: Checkpoint, options: EngineOptions) -> None:
        super().__init__(checkpoint, options)
        self._module: torch.nn.Module | None = None

    def load(self) -> None:
        module = self.checkpoint.build().to(self.device, self.dtype)
        self._module = module.to(memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def _forward(self, x: torch.Tensor, cancelled: Callable[[], bool] | None) -> torch.Tensor:
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self._module(x).float()

    def close(self) -> None:
        self._module = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def describe(self) -> str:
        return f"cuda/{torch.cuda.get_device_name(self.device)}" if self.device.type == "cuda" else self.kind
