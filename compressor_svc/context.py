"""The state one compression job's stages share: source facts, settings, targets, time, scenes, notes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from compressor_svc.job import CompressJob, CompressOptions, Targets
from compressor_svc.planning import Clock, CostModel
from compressor_svc.scenes import Scene
from compressor_svc.search import EXTRAPOLATE_VMAF, Probe, SceneCurve
from mesh.codecs import Encoder
from mesh.gates import BITRATE_CAP_FACTOR
from mesh.media import MediaFacts
from mesh.progress import ProgressReporter

# The split's predicted size must stay this far under the validator's bitrate cap: sizes are predictions.
BITRATE_SAFETY = 0.97


@dataclass
class SceneState:
    """One scene's preset, its measured points and the encodes already made (reusable by q)."""

    scene: Scene
    preset: str
    probes: list[Probe] = field(default_factory=list)
    files: dict[float, Path] = field(default_factory=dict)

    def curve(self, encoder: Encoder, reach_vmaf: float = EXTRAPOLATE_VMAF) -> SceneCurve:
        return SceneCurve(self.probes, encoder, self.scene.frames, reach_vmaf)

    def record(self, probe_result: Probe) -> None:
        """Add a measurement; one at the same q replaces the older (a full-frame value beats a probe's)."""
        self.probes = [p for p in self.probes if p.q != probe_result.q] + [probe_result]


@dataclass
class JobContext:
    """Everything the stages of one job read and update; the stages are functions of it."""

    source_path: Path
    source: MediaFacts
    workdir: Path
    job: CompressJob
    options: CompressOptions
    targets: Targets
    clock: Clock
    costs: CostModel
    encoder: Encoder
    reporter: ProgressReporter
    scenes: list[SceneState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    probe_count: int = 0
    # Real-size mode: the search ran on a proxy and verification may be sampled (see compressor_svc.proxy).
    on_proxy: bool = False
    # What a sampled verification of the whole clip should take, as measured by the proxy probes.
    verify_seconds: float | None = None
    threads_per_job: int = field(init=False)
    slots: asyncio.Semaphore = field(init=False)  # `options.parallel` encodes or measurements at once

    def __post_init__(self) -> None:
        self.threads_per_job = max(1, self.options.threads // max(1, self.options.parallel))
        self.slots = asyncio.Semaphore(max(1, self.options.parallel))

    def mpx(self, frames: int) -> float:
        """Megapixels in `frames` frames of the source: the unit the cost model counts in."""
        return frames * self.source.width * self.source.height / 1e6

    def timeout(self, reserve: float = 0.0) -> float:
        """Seconds an ffmpeg run may take while keeping `reserve` back; TimeoutError when none are left."""
        left = self.clock.remaining() - reserve
        if left <= 0:
            raise TimeoutError("time budget spent")
        return left

    def bitrate_cap_bytes(self) -> float | None:
        """The largest output the validator's bitrate gate accepts (with our safety), None in CRF mode."""
        if self.job.mode == "CRF":
            return None
        return self.job.bitrate_mbps * 1e6 * BITRATE_CAP_FACTOR * BITRATE_SAFETY * self.source.duration / 8
