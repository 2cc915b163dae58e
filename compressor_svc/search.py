"""The quality search as pure functions: where to probe next, each scene's rate/quality curve, and how to
split quality between scenes so the whole clip meets the target with the fewest bytes.

A probe encodes one scene at quality parameter q and measures its VMAF-NEG and size. Per scene the next
q comes from bisection narrowed by interpolation (ab-av1 / Av1an style), done in u = ln(100.5 - VMAF)
where the curve is close to a straight line. The whole clip's score is
the harmonic mean over frames, i.e. N / sum(n_i / V_i) over scenes, so scenes can trade quality: the
allocation sweeps a Lagrange multiplier over size + lambda * sum(n_i / V_i) and returns every distinct
split, and the caller keeps the one the subnet would pay most for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mesh.codecs import Encoder

CONVERGED_WITHIN = 0.35
MAX_JUMP_VMAF = 10.0
EXTRAPOLATE_VMAF = 2.5
# Toward better quality the curves reach farther: past their probes they assume the flattest slope seen (one
# probe) or the measured one, so a far target is predicted late, not early; a real-size job whose one probe read
# 4 points under the target otherwise chose the best q in reach and landed under T (docs/figures.md).
QUALITY_REACH_VMAF = 6.0
LAMBDA_STEPS = 240
# VMAF saturates near 100, so ln(CEILING - VMAF) is close to linear in q where VMAF itself is not: the
# search interpolates and the curves extrapolate in that space.
CEILING = 100.5
TYPICAL_VMAF = 90.0
# The flattest VMAF-NEG-over-q slope we measured relative to an encoder's typical one (0.75-1.33 in
# compressor_svc/data/proxy_bias.json's full-clip pairs).
UNMEASURED_SLOPE_FLOOR = 0.75
# The first probe of a scene aims this far above the target: a search cut short by the deadline then
# still holds an encode that meets the target for most scenes.
FIRST_PROBE_MARGIN = 3.0


def distortion(vmaf: float | np.ndarray) -> float | np.ndarray:
    """u = ln(CEILING - VMAF): grows with q at a nearly constant rate."""
    return np.log(CEILING - np.minimum(vmaf, CEILING - 1e-3))


def from_distortion(u: float | np.ndarray) -> float | np.ndarray:
    return CEILING - np.exp(u)


@dataclass(frozen=True)
class Probe:
    q: float
    vmaf_neg: float
    size: int


def next_probe(probes: Sequence[Probe], target: float, encoder: Encoder,
               start: float | None = None) -> float | None:
    """The next q to try for VMAF-NEG `target`, or None when the search has converged."""
    if not probes:
        return encoder.clamp(start if start is not None else encoder.guess(target + FIRST_PROBE_MARGIN))
    passing = [p for p in probes if p.vmaf_neg >= target]
    failing = [p for p in probes if p.vmaf_neg < target]
    if any(p.vmaf_neg - target <= CONVERGED_WITHIN for p in passing):
        return None
    best_pass = max(passing, key=lambda p: p.q) if passing else None
    best_fail = min(failing, key=lambda p: p.q) if failing else None
    goal = distortion(target)
    if best_pass and best_fail:
        low, high = best_pass.q, best_fail.q
        if high - low <= encoder.q_step * 1.01:
            return None
        u_low, u_high = distortion(best_pass.vmaf_neg), distortion(best_fail.vmaf_neg)
        share = min(0.9, max(0.1, (goal - u_low) / max(u_high - u_low, 1e-9)))
        q = min(max(encoder.clamp(low + share * (high - low)), low + encoder.q_step), high - encoder.q_step)
        return encoder.clamp(q) if low < q < high else None
    anchor = best_pass or best_fail
    slope = distortion_slope(probes, encoder)
    jump = (goal - distortion(anchor.vmaf_neg)) / slope
    limit = MAX_JUMP_VMAF / -encoder.vmaf_slope
    jump = math.copysign(min(abs(jump), limit), jump)
    # Overshoot so the next probe brackets the target instead of creeping up to it; more so toward
    # quality, because a scene holding only failing probes has nothing safe to fall back on.
    overshoot = 1.1 if best_pass else 1.3
    q = encoder.clamp(anchor.q + jump * overshoot + math.copysign(encoder.q_step, jump))
    if q == anchor.q or any(p.q == q for p in probes):
        return None
    return q


def distortion_slope(probes: Sequence[Probe], encoder: Encoder) -> float:
    """du/dq (positive) through the outermost probes; from the encoder's typical VMAF slope otherwise."""
    typical = -encoder.vmaf_slope / (CEILING - TYPICAL_VMAF)
    points = sorted({p.q: p.vmaf_neg for p in probes}.items())
    if len(points) >= 2:
        (q0, v0), (q1, v1) = points[0], points[-1]
        measured = float(distortion(v1) - distortion(v0)) / (q1 - q0)
        if measured > 0:
            return min(typical * 4, max(typical / 4, measured))
    return typical


class SceneCurve:
    """A scene's VMAF-NEG and ln(size) against q: piecewise linear through its probes (made monotone) in
    u = ln(100.5 - VMAF) and ln(size), extrapolated beyond them with the fitted slopes by about
    `reach_vmaf` points of VMAF toward lower quality (a little for CRF; far when a bitrate cap may force much
    lower quality) and at least QUALITY_REACH_VMAF toward better quality."""

    def __init__(self, probes: Sequence[Probe], encoder: Encoder, frames: int,
                 reach_vmaf: float = EXTRAPOLATE_VMAF) -> None:
        if not probes:
            raise ValueError("a scene curve needs at least one probe")
        self.encoder = encoder
        self.frames = frames
        ordered = sorted({p.q: p for p in probes}.values(), key=lambda p: p.q)
        self.qs = np.array([p.q for p in ordered])
        self.us = np.maximum.accumulate(distortion(np.array([p.vmaf_neg for p in ordered])))
        sizes = np.array([max(p.size, 1) for p in ordered], dtype=float)
        self.log_sizes = np.minimum.accumulate(np.log(sizes))
        self.u_slope = distortion_slope(ordered, encoder)
        if len(ordered) >= 2 and self.log_sizes[-1] < self.log_sizes[0]:
            self.size_slope = (self.log_sizes[-1] - self.log_sizes[0]) / (self.qs[-1] - self.qs[0])
        else:
            self.size_slope = encoder.size_slope
        self.q_low = encoder.clamp(self.qs[0] - max(reach_vmaf, QUALITY_REACH_VMAF) / -encoder.vmaf_slope)
        self.q_high = encoder.clamp(self.qs[-1] + reach_vmaf / -encoder.vmaf_slope)

    def grid(self) -> np.ndarray:
        step = self.encoder.q_step
        count = int(round((self.q_high - self.q_low) / step)) + 1
        return np.round(self.q_low + step * np.arange(count), 4)

    def _along(self, q: np.ndarray, values: np.ndarray, slope: float, below_slope: float | None = None) -> np.ndarray:
        inside = np.interp(q, self.qs, values)
        below = values[0] + (slope if below_slope is None else below_slope) * (q - self.qs[0])
        above = values[-1] + slope * (q - self.qs[-1])
        return np.where(q < self.qs[0], below, np.where(q > self.qs[-1], above, inside))

    def vmaf(self, q: float | np.ndarray) -> np.ndarray:
        # One probe has not measured the slope: toward better quality (lower q) assume the flattest curve
        # seen, so reaching the target is not predicted too soon (a miss scores ~0, an overshoot a little less).
        below = self.u_slope * UNMEASURED_SLOPE_FLOOR if len(self.qs) == 1 else None
        u = self._along(np.asarray(q, dtype=float), self.us, self.u_slope, below)
        return np.clip(from_distortion(u), 1e-3, 100.0)

    def size(self, q: float | np.ndarray) -> np.ndarray:
        return np.exp(self._along(np.asarray(q, dtype=float), self.log_sizes, self.size_slope))

    def highest_q(self, target: float, grid: np.ndarray | None = None) -> float:
        """The highest q (smallest file) on `grid` predicted to reach `target`; the lowest q if none does."""
        grid = self.grid() if grid is None else grid
        reaching = grid[self.vmaf(grid) >= target]
        return float(reaching.max()) if reaching.size else float(grid.min())


@dataclass(frozen=True)
class Allocation:
    """One q per scene and the predicted whole-clip VMAF-NEG (harmonic mean) and size in bytes."""

    qs: tuple[float, ...]
    vmaf_neg: float
    size: float


def allocations(curves: Sequence[SceneCurve], grids: Sequence[np.ndarray] | None = None) -> list[Allocation]:
    """The size/quality frontier over per-scene q choices (each scene's `grid`, by default its curve's),
    from the smallest file to the best quality."""
    grids = list(grids) if grids is not None else [curve.grid() for curve in curves]
    sizes = [curve.size(grid) for curve, grid in zip(curves, grids)]
    harmonic = [curve.frames / curve.vmaf(grid) for curve, grid in zip(curves, grids)]
    total_frames = sum(curve.frames for curve in curves)
    # lambda converts harmonic-sum units to bytes; sweep it across every slope the grids contain.
    slopes = [np.abs(np.diff(s)) / np.maximum(np.abs(np.diff(h)), 1e-12) for s, h in zip(sizes, harmonic)]
    finite = np.concatenate([np.array([1.0]), *(s[np.isfinite(s) & (s > 0)] for s in slopes)])
    lambdas = np.geomspace(finite.min() / 4, finite.max() * 4, LAMBDA_STEPS)
    picks = [np.argmin(s[None, :] + lambdas[:, None] * h[None, :], axis=1) for s, h in zip(sizes, harmonic)]
    seen: dict[tuple[float, ...], Allocation] = {}
    for row in range(len(lambdas)):
        qs = tuple(float(grid[pick[row]]) for grid, pick in zip(grids, picks))
        if qs in seen:
            continue
        size = float(sum(s[pick[row]] for s, pick in zip(sizes, picks)))
        harmonic_sum = float(sum(h[pick[row]] for h, pick in zip(harmonic, picks)))
        seen[qs] = Allocation(qs, total_frames / harmonic_sum, size)
    return sorted(seen.values(), key=lambda a: a.size)


def uniform_allocation(curves: Sequence[SceneCurve], target: float,
                       grids: Sequence[np.ndarray] | None = None) -> Allocation:
    """Every scene at the highest q predicted to reach `target` by itself (the per-scene-equal split)."""
    qs = [curve.highest_q(target, grids[index] if grids is not None else None)
          for index, curve in enumerate(curves)]
    size = float(sum(curve.size(q) for curve, q in zip(curves, qs)))
    frames = sum(curve.frames for curve in curves)
    vmaf = frames / float(sum(curve.frames / curve.vmaf(q) for curve, q in zip(curves, qs)))
    return Allocation(tuple(qs), vmaf, size)
