"""The competition's scoring beyond one item's media score (spec competition.md §5.3) and the reference
compressor's policy (§7), as pure functions, so the cost-and-score benchmark can score our entry and the
reference the way the validator would. The media score itself is mesh.scoring.head_compression_score (§5.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# §5.3 locked rates (competition/pricing.py:11-24), USD per second, and the sandbox CPU rate per core-second.
GPU_RATES = {"L4": 0.000222, "L40S": 0.000542, "RTX-PRO-6000": 0.000842}
CPU_RATE = 0.00003942
COST_FLOOR_USD = 1e-6
LENGTH_WEIGHT_EXPONENT = 2.02
# (quality, cost_efficiency, length_coverage): the example manifest's and comp-01's (§5.3 "Scoring factors").
EXAMPLE_FACTORS = (0.6, 0.25, 0.15)
COMP01_FACTORS = (0.6, 0.0, 0.4)


def dollars_per_second(gpu: str, cpus: int, gpu_count: int = 1) -> float:
    """gpu_rate·gpu_count + 0.00003942·cpu_cores (pricing.py:50-74)."""
    if gpu not in GPU_RATES:
        raise ValueError(f"gpu must be one of {sorted(GPU_RATES)}, got {gpu!r}")
    if cpus < 1 or gpu_count < 0:
        raise ValueError("cpus must be at least 1 and gpu_count not negative")
    return GPU_RATES[gpu] * gpu_count + CPU_RATE * cpus


def item_cost(batch_wall_seconds: float, batch_items: int, gpu: str, cpus: int) -> float:
    """The batch's wall time at the locked rate, split equally over its items, never under the floor."""
    return max(COST_FLOOR_USD, batch_wall_seconds * dollars_per_second(gpu, cpus) / batch_items)


def length_weight(duration: float, max_video_length: float = 3600.0) -> float:
    """w = (ln(1+d) / ln(1+max))^2.02 (config.py:68-98)."""
    return (math.log1p(duration) / math.log1p(max_video_length)) ** LENGTH_WEIGHT_EXPONENT


@dataclass(frozen=True)
class ItemResult:
    """One contender's result on one item: valid per §5.1, its media score and its cost."""

    duration: float
    valid: bool
    media: float
    cost: float


def final_scores(contenders: dict[str, Sequence[ItemResult]], factors: tuple[float, float, float] = EXAMPLE_FACTORS,
                 max_video_length: float = 3600.0) -> dict[str, dict[str, float]]:
    """Each contender's media/cost/coverage aggregates and final score (scoring.py:487-555). Cost efficiency
    on an item is min(1, cheapest valid cost / own cost); invalid items get 0 everywhere and set no minimum."""
    lengths = {len(items) for items in contenders.values()}
    if len(lengths) != 1:
        raise ValueError("every contender needs a result for every item")
    count = lengths.pop()
    cheapest = []
    for index in range(count):
        valid = [items[index].cost for items in contenders.values() if items[index].valid]
        cheapest.append(min(valid) if valid else None)
    quality_factor, cost_factor, coverage_factor = factors
    scores = {}
    for name, items in contenders.items():
        weights = [length_weight(item.duration, max_video_length) for item in items]
        total = sum(weights)
        media = sum(w * (item.media if item.valid else 0.0) for w, item in zip(weights, items)) / total
        cost = sum(w * (min(1.0, low / max(item.cost, COST_FLOOR_USD)) if item.valid and low else 0.0)
                   for w, item, low in zip(weights, items, cheapest)) / total
        coverage = sum(w * item.valid for w, item in zip(weights, items)) / total
        final = round(quality_factor * media + cost_factor * cost + coverage_factor * coverage, 8)
        scores[name] = {"media_agg": media, "cost_agg": cost, "coverage": coverage, "final": final}
    return scores


def reference_cq(threshold: float | None) -> int:
    """The reference's fixed CQ (app.py:61-66, 149-171): 30 at T ≥ 93, 35 at T ≥ 89, else 40; 35 without T."""
    if threshold is None:
        return 35
    return 30 if threshold >= 93 else 35 if threshold >= 89 else 40


def reference_args(source: Path, dest: Path, *, threshold: float, mode: str = "CRF", target_bitrate: int = 0,
                   nvenc: bool = False, svt_preset: int = 8) -> list[str]:
    """The reference's single encode (app.py:374-416). Without NVENC its `-c:v av1_nvenc -cq Q -preset p4`
    becomes libsvtav1 `-crf Q` (the same 0-63 AV1 quantiser scale) at preset 8, SVT-AV1's middle speed;
    everything else (maps, setsar=1, audio copy, no tuning, VBR at the target) is the reference's."""
    video = ["-c:v", "av1_nvenc", "-preset", "p4"] if nvenc else ["-c:v", "libsvtav1", "-preset", str(svt_preset)]
    if mode == "VBR":
        if target_bitrate <= 0:
            raise ValueError("VBR needs a positive target_bitrate")
        quality = ["-b:v", str(target_bitrate)]
    else:
        quality = ["-cq" if nvenc else "-crf", str(reference_cq(threshold))]
    hwaccel = ["-hwaccel", "cuda"] if nvenc else []
    return ["-y", "-loglevel", "error", *hwaccel, "-i", str(source), "-map", "0:v:0", "-map", "0:a?", *video,
            *quality, "-vf", "setsar=1", "-c:a", "copy", "-sn", "-dn", "-movflags", "+faststart", str(dest)]
