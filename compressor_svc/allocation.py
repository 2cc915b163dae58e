"""Choosing the split: which q each scene gets, ranked by what the subnet would pay for the whole.

`compressor_svc.search` sweeps the candidate splits from the scene curves; this module judges them for
one job (its threshold, bitrate cap, margins and time left) and fills in scenes nobody had time to probe.
"""

from __future__ import annotations

import numpy as np

from compressor_svc.context import JobContext, SceneState
from compressor_svc.planning import can_afford
from compressor_svc.search import Allocation, Probe, SceneCurve, allocations, uniform_allocation
from mesh.scoring import head_compression_score

# Source bytes per output byte assumed for an unprobed scene when no scene was probed at all.
GUESSED_RATIO = 8.0
# Predicted sizes are judged this much larger: near the validator's 1.25x cliff a size slightly under-
# predicted turns a paid result into a zero, and the slope beyond the probes is an estimate.
SIZE_MARGIN = 0.05


def safe_probe(ctx: JobContext, state: SceneState) -> None:
    """An unprobed scene gets a conservative quality, predicted (not measured) to clear the target: by the
    nearest curves, or the encoder's typical q, with its size guessed from the probed scenes or a ratio."""
    probed = [s for s in ctx.scenes if s.probes]
    safe = ctx.targets.safe
    if probed:
        q = min(s.curve(ctx.encoder).highest_q(safe) for s in probed)
        per_frame = sum(min(p.size for p in s.probes) / s.scene.frames for s in probed) / len(probed)
    else:
        q = ctx.encoder.guess(safe)
        per_frame = ctx.source.size_bytes / ctx.source.frame_count / GUESSED_RATIO
    state.preset = ctx.encoder.presets[-1]
    state.probes.append(Probe(q, safe, int(per_frame * state.scene.frames)))


def predicted_score(ctx: JobContext, allocation: Allocation) -> float:
    """What the subnet would pay for a predicted split, judged pessimistically (VMAF less the margins, the
    size plus its margin)."""
    pessimistic = allocation.vmaf_neg - ctx.options.prediction_margin - ctx.options.vmaf_margin
    rate = min(1.0, allocation.size * (1 + SIZE_MARGIN) / ctx.source.size_bytes)
    return head_compression_score(pessimistic, rate, ctx.job.threshold) if rate > 0 else 0.0


def _predicted_key(ctx: JobContext, allocation: Allocation) -> tuple:
    """Rank splits: under the bitrate cap first, then earning anything at all (a split reaching the floor
    only at a ratio under the 1.25 gate earns 0), then reaching the floor, then the predicted score. When
    the floor is out of reach under a cap, the best quality under it wins."""
    cap = ctx.bitrate_cap_bytes()
    within_cap = cap is None or allocation.size <= cap
    score = predicted_score(ctx, allocation)
    meets = allocation.vmaf_neg >= ctx.targets.floor
    if not meets and cap is not None:
        return (within_cap, score > 0, meets, allocation.vmaf_neg, -allocation.size)
    return (within_cap, score > 0, meets, score, allocation.vmaf_neg if not meets else -allocation.size)


def _pick(ctx: JobContext, curves: list[SceneCurve], grids: list[np.ndarray] | None = None) -> Allocation:
    floor = ctx.targets.floor
    if not ctx.options.select_by_score:
        return uniform_allocation(curves, floor, grids)
    options = [*allocations(curves, grids), uniform_allocation(curves, floor, grids)]
    return max(options, key=lambda a: _predicted_key(ctx, a))


def _curves(ctx: JobContext) -> list[SceneCurve]:
    return [s.curve(ctx.encoder, ctx.targets.reach) for s in ctx.scenes]


def made_allocation(ctx: JobContext) -> Allocation:
    """The best split among the scene encodes already made (by probes): joining them costs no encode."""
    made = [np.array(sorted(s.files) or [p.q for p in s.probes]) for s in ctx.scenes]
    return _pick(ctx, _curves(ctx), made)


def choose_allocation(ctx: JobContext) -> Allocation:
    """The split the subnet would pay most for; when encoding it would not fit in the time left,
    the best split among the scene encodes the probes already made (a clip searched on a proxy has none:
    its one encode must be made anyway)."""
    choice = _pick(ctx, _curves(ctx))
    if ctx.on_proxy or can_afford(ctx, choice):
        return choice
    ctx.notes.append("deadline: quality chosen among the probe encodes already made")
    return made_allocation(ctx)
