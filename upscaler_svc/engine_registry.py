"""Which engines exist and how one is chosen: by name (`cpu`, `cuda`) or with `auto`, the first engine in
`AUTO_ORDER` whose hardware is present.

The registry is its own module because it must import every engine, while each engine imports the shared
base in `upscaler_svc.engine`; settings validate `UPSCALER_ENGINE` against `ENGINES`, and further engines
join with `register_engine`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mesh.errors import Misconfigured
from upscaler_svc.cpu_engine import CpuEngine
from upscaler_svc.cuda_engine import CudaEngine
from upscaler_svc.engine import Engine, EngineOptions
from upscaler_svc.weights import Checkpoint


@dataclass(frozen=True)
class EngineKind:
    factory: Callable[[Checkpoint, EngineOptions], Engine]
    available: Callable[[], bool]


ENGINES: dict[str, EngineKind] = {"cpu": EngineKind(CpuEngine, lambda: True),
                                  "cuda": EngineKind(CudaEngine, torch.cuda.is_available)}
AUTO_ORDER = ("cuda", "cpu")


def register_engine(kind: str, factory: Callable[[Checkpoint, EngineOptions], Engine],
                    available: Callable[[], bool]) -> None:
    """Make an engine selectable by name (and by `auto` when `available()` says its hardware is there)."""
    ENGINES[kind] = EngineKind(factory, available)


def create_engine(kind: str, checkpoint: Checkpoint, options: EngineOptions | None = None) -> Engine:
    """The engine named `kind`, or with `auto` the first present in AUTO_ORDER. Not yet loaded."""
    options = options or EngineOptions()
    if kind == "auto":
        kind = next(name for name in AUTO_ORDER if name in ENGINES and ENGINES[name].available())
    if kind not in ENGINES:
        raise Misconfigured(f"unknown engine {kind!r}: available {sorted(ENGINES)} or auto")
    if not ENGINES[kind].available():
        raise Misconfigured(f"engine {kind!r} is registered but its hardware is not present")
    return ENGINES[kind].factory(checkpoint, options)
