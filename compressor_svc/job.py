"""What a compression job asks for, how hard to try, the quality targets it implies, and what it returns."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from compressor_svc.search import EXTRAPOLATE_VMAF
from mesh.codecs import RATE_MODES, normalize_codec
from mesh.errors import InvalidInput
from mesh.gates import Gate
from mesh.media import MediaFacts
from mesh.vmaf import VmafScores

# Under a bitrate cap the best output may sit far below the VMAF target the probes aimed at.
CAPPED_REACH_VMAF = 25.0
# A scene nobody had time to probe is encoded this many VMAF points above the search target.
SAFE_MARGIN_VMAF = 3.0
# The validator's largest accepted VMAF - VMAF-NEG gap; a candidate past it raises the allocation floor.
MAX_VMAF_DELTA = 3.0


@dataclass(frozen=True)
class CompressJob:
    """What the validator asks for."""

    threshold: float
    codec: str = "av1"
    mode: str = "CRF"
    bitrate_mbps: float = 0.0

    def validated(self) -> CompressJob:
        if not 0 <= self.threshold <= 100:
            raise InvalidInput(f"VMAF threshold must be within 0-100, got {self.threshold}")
        mode = (self.mode or "CRF").upper()
        if mode not in RATE_MODES:
            raise InvalidInput(f"codec mode must be one of {', '.join(RATE_MODES)}, got {self.mode!r}")
        if mode != "CRF" and self.bitrate_mbps <= 0:
            raise InvalidInput(f"{mode} mode needs a target bitrate > 0 Mbit/s")
        return CompressJob(self.threshold, normalize_codec(self.codec), mode, self.bitrate_mbps)


OPERATING_SPREAD_VMAF = 1.5


def operating_offset(seed: str) -> float:
    """How far above the common search target this miner aims, derived from its hotkey: uniform in
    [0, 1.5) VMAF-NEG points and the same on every run. The validator zeroes a result within 0.2 VMAF-NEG,
    0.2 VMAF and 0.01 compression rate of an earlier miner's on the same input, so miners running this
    software must not land on one point: two random hotkeys' offsets are 0.2 apart or more about 75 % of
    the time, at a cost of at most ~0.02 in score (a point of VMAF-NEG buys a few % of bytes)."""
    if not seed:
        return 0.0
    digest = hashlib.sha256(f"vidaio-mesh/operating-point/{seed}".encode()).digest()
    return round(int.from_bytes(digest[:8], "big") / 2**64 * OPERATING_SPREAD_VMAF, 2)


@dataclass(frozen=True)
class CompressOptions:
    """How hard to try. The defaults are the service's; the benchmark switches parts off for baselines."""

    vmaf_margin: float = 0.3
    prediction_margin: float = 0.2
    max_probes_per_scene: int = 5
    # > 1 is cheaper but biased high: libvmaf's n_subsample skews VMAF-NEG up 1.5-2 points at 2.
    probe_subsample_max: int = 1
    min_scene_seconds: float = 1.5
    max_scenes: int = 24
    scene_threshold: float = 27.0
    refine_passes: int = 2
    preset: str | None = None
    fixed_q: float | None = None
    # Cost first (the competition bills every second): a small proxy search at the fastest preset and one
    # encode, delivered with its predicted VMAF-NEG, not measured (compressor._lean).
    lean: bool = False
    split_scenes: bool = True
    select_by_score: bool = True
    tuned: bool = True
    allow_hardware: bool = True
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    parallel: int = 1
    # VMAF-NEG points this miner's search aims above everyone's (see `operating_offset`).
    operating_offset: float = 0.0


@dataclass
class Targets:
    """The job's VMAF-NEG thresholds, in one place because each is defined by the one before it.

    aim: what the verified whole must reach (threshold + vmaf_margin); search: what probes aim for, so a
    prediction error still lands above aim (plus this miner's operating offset); floor: the least a chosen
    split may predict, starting at search and raised while verification finds VMAF far above VMAF-NEG;
    safe: the predicted quality of scenes nobody had time to probe; reach: how far (in VMAF points) scene
    curves extrapolate.
    """

    aim: float
    search: float
    floor: float
    safe: float
    reach: float

    @classmethod
    def of(cls, job: CompressJob, options: CompressOptions) -> Targets:
        aim = job.threshold + options.vmaf_margin
        search = aim + options.prediction_margin + options.operating_offset
        reach = EXTRAPOLATE_VMAF if job.mode == "CRF" else CAPPED_REACH_VMAF
        return cls(aim=aim, search=search, floor=search, safe=search + SAFE_MARGIN_VMAF, reach=reach)

    def raise_floor_if_lagging(self, scores: VmafScores) -> None:
        """Aim the next split higher when VMAF-NEG trails VMAF by more than the validator accepts."""
        if scores.vmaf - scores.vmaf_neg > MAX_VMAF_DELTA:
            self.floor += 1.0


@dataclass(frozen=True)
class Candidate:
    """One verified output and what the subnet would pay for it."""

    path: Path
    media: MediaFacts
    scores: VmafScores
    qs: tuple[float, ...]
    gates: list[Gate]
    score: float
    meets: bool


@dataclass(frozen=True)
class CompressOutcome:
    output: Path
    source: MediaFacts
    media: MediaFacts
    vmaf: float
    vmaf_neg: float
    ratio: float
    predicted_score: float
    meets_threshold: bool
    encoder: str
    preset: str
    scene_count: int
    probes: int
    note: str
    gates: list[Gate]
    timings: dict[str, float]
