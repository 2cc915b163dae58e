"""Time: what each step should cost on this machine, and the plan and reserves that keep a job in budget.

The rates start from rough figures and move toward what the calibration, probes and verifications
measure. The plan (preset, probes per scene) is chosen from them; the reserves keep back the time the
final encodes and the full verification need, so a search or a refinement never eats the output.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from compressor_svc.search import Allocation
from mesh.codecs import Encoder

if TYPE_CHECKING:
    from compressor_svc.context import JobContext

# Fixed cost of one ffmpeg run (start, probe, encoder init), on top of the per-megapixel rates below.
CALL_OVERHEAD = 0.25
# Throughput (megapixels per second on 2 cores, default preset) until this machine is measured: about
# 85-95 % of what 720p clips run at on the 2-core development VM (SVT-AV1 preset 8 59 Mpx/s, x265 ultrafast
# in two chunks 60-75 Mpx/s, libvmaf ~75 Mpx/s). Too low a start makes a real-size job pick the fastest preset
# and one probe before anything has been timed. Small frames run slower per pixel, which the first measurement corrects.
ENCODE_MPX_PER_S = {"libsvtav1": 50.0, "libx265": 18.0, "libx264": 15.0, "libvpx-vp9": 12.0}
HARDWARE_MPX_PER_S = 400.0
VMAF_MPX_PER_S = 70.0
SCENE_MPX_PER_S = 150.0
# Building a proxy decodes the whole clip (h264 at 720p: ~500 Mpx/s on 2 cores) and writes a few FFV1 frames.
PROXY_BUILD_MPX_PER_S = 300.0
# A clip searched on a proxy is verified on every 10th frame when a full pass does not fit.
PROXY_VERIFY_SUBSAMPLE = 10


class Clock:
    """The job's deadline, fixed when the job starts."""

    def __init__(self, budget_seconds: float) -> None:
        self.deadline = time.monotonic() + budget_seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class CostModel:
    """Seconds per megapixel for encodes (at the encoder's default-preset cost) and VMAF runs, starting
    from rough figures and replaced by what this machine measures."""

    def __init__(self, encoder: Encoder, threads: int) -> None:
        scale = max(1.0, threads / 2)
        encode_rate = HARDWARE_MPX_PER_S if encoder.hardware else ENCODE_MPX_PER_S[encoder.name] * scale
        self.encoder = encoder
        self.encode = 1.0 / encode_rate
        self.vmaf = 1.0 / (VMAF_MPX_PER_S * scale)

    @staticmethod
    def _vmaf_work(mpx: float, subsample: int, models: int) -> float:
        """Every frame is decoded whatever the subsampling (a 720p pass on every 10th frame took a quarter
        of a full one); a second model costs 0.8 of the first."""
        return mpx * (0.17 + 0.83 / subsample) * (1.0 if models == 1 else 1.8)

    def encode_seconds(self, mpx: float, preset: str) -> float:
        return mpx * self.encode * self.encoder.cost(preset)

    def vmaf_seconds(self, mpx: float, subsample: int = 1, models: int = 2) -> float:
        return self._vmaf_work(mpx, subsample, models) * self.vmaf

    def observe_encode(self, mpx: float, preset: str, seconds: float) -> None:
        measured = net_of_overhead(seconds) / max(mpx * self.encoder.cost(preset), 1e-9)
        self.encode = _blend(self.encode, measured)

    def observe_vmaf(self, mpx: float, subsample: int, models: int, seconds: float) -> None:
        measured = net_of_overhead(seconds) / max(self._vmaf_work(mpx, subsample, models), 1e-9)
        self.vmaf = _blend(self.vmaf, measured)


def net_of_overhead(seconds: float) -> float:
    """A run's time without the fixed start-up cost, which the estimates add per call."""
    return max(seconds - CALL_OVERHEAD, 0.2 * seconds)


def _blend(estimate: float, measured: float) -> float:
    """Move halfway to a measurement, at most 4x per step: one run slowed by a load spike (or sped up
    by a cache) must not swing the whole plan."""
    return 0.5 * estimate + 0.5 * min(estimate * 4, max(estimate / 4, measured))


def scene_detection_fits(ctx: JobContext) -> bool:
    """Scene detection may take a tenth of the time left: scenes only refine the search."""
    return ctx.mpx(ctx.source.frame_count) / SCENE_MPX_PER_S < ctx.clock.remaining() * 0.1


def expected_seconds(ctx: JobContext, preset: str, probes: float, scenes: int) -> float:
    """Search (each probe encodes and measures every scene once), final encodes, verification, one
    refinement: what a job at `preset` should cost, with the per-call overheads."""
    mpx = ctx.mpx(ctx.source.frame_count)
    encode = ctx.costs.encode_seconds(mpx, preset)
    probe_vmaf = ctx.costs.vmaf_seconds(mpx, ctx.options.probe_subsample_max, models=1)
    verify = ctx.costs.vmaf_seconds(mpx) + 2 * CALL_OVERHEAD
    search = probes * (encode + probe_vmaf + 2 * CALL_OVERHEAD * scenes)
    return search + 2 * (0.5 * encode + verify + CALL_OVERHEAD * scenes)


def plan(ctx: JobContext, faster_presets: bool = True) -> int:
    """Give every scene a preset and return the probes per scene (0: whole-scene probes do not fit).

    Preference order, first whose expected job fits in 70% of the time left: a full search (3 probes
    per scene) at the slowest preset down to the encoder's default, then a shorter search at the
    default, then faster presets. A slower preset saves 10-30% of the bytes at equal VMAF, so time
    buys presets first; but a preset faster than the default loses more than a shorter search does,
    so with `faster_presets` off (a clip long enough for a proxy, whose search is the shorter one) the
    plan stops at the default and the caller searches a proxy instead.
    """
    encoder = ctx.encoder
    presets = [ctx.options.preset] if ctx.options.preset else list(encoder.presets)
    default = encoder.default_preset if encoder.default_preset in presets else presets[0]
    slow_side = presets[:presets.index(default) + 1]
    fast_side = presets[presets.index(default) + 1:] if faster_presets else []
    plans = [(preset, 3.0) for preset in slow_side] + [(default, 2.0), (default, 1.0)]
    plans += [(preset, 1.0) for preset in fast_side]
    budgets = [ctx.clock.remaining() * 0.7] * len(plans)
    if faster_presets:  # the last resort: the fastest preset with all the time left
        plans.append((presets[-1], 1.0))
        budgets.append(ctx.clock.remaining())
    chosen, probes = next(((preset, probes) for (preset, probes), budget in zip(plans, budgets)
                           if expected_seconds(ctx, preset, probes, len(ctx.scenes)) <= budget),
                          (presets[-1], 0.0))
    for state in ctx.scenes:
        state.preset = chosen
    return ctx.options.max_probes_per_scene if probes else 0


def probe_subsample(ctx: JobContext, frames: int) -> int:
    """Every frame unless the options allow subsampling (scenes under 60 frames are never subsampled)."""
    return max(1, min(ctx.options.probe_subsample_max, frames // 30))


def verify_reserve(ctx: JobContext) -> float:
    """Seconds the join and a full verification need (a sampled one for a clip searched on a proxy), with
    slack (kept back from final encodes)."""
    if ctx.on_proxy and ctx.verify_seconds is not None:
        return ctx.verify_seconds
    subsample = PROXY_VERIFY_SUBSAMPLE if ctx.on_proxy else 1
    return 1.5 * (ctx.costs.vmaf_seconds(ctx.mpx(ctx.source.frame_count), subsample) + 3 * CALL_OVERHEAD)


def proxy_costs(ctx: JobContext, proxy_frames: int, preset: str) -> tuple[float, float, float]:
    """Expected seconds of a proxy search at `preset`, from the cost model: building the proxy, one probe,
    and the finish (the final encode and a sampled verification)."""
    full, sample = ctx.mpx(ctx.source.frame_count), ctx.mpx(proxy_frames)
    build = full / (PROXY_BUILD_MPX_PER_S * max(1.0, ctx.options.threads / 2)) + CALL_OVERHEAD
    probe = ctx.costs.encode_seconds(sample, preset) + ctx.costs.vmaf_seconds(sample, models=1) + 2 * CALL_OVERHEAD
    finish = ctx.costs.encode_seconds(full, preset) * 1.15 + ctx.costs.vmaf_seconds(full, PROXY_VERIFY_SUBSAMPLE) \
        + 4 * CALL_OVERHEAD
    return build, probe, finish


def plan_on_proxy(ctx: JobContext, proxy_frames: int, probes: int) -> str | None:
    """The slowest preset, from the encoder's default toward faster ones, at which a proxy search of
    `probes` probes, the final encode and a sampled verification fit in 90% of the time left; None when
    not even the fastest does."""
    encoder = ctx.encoder
    presets = [ctx.options.preset] if ctx.options.preset else list(encoder.presets)
    default = encoder.default_preset if encoder.default_preset in presets else presets[0]
    for preset in presets[presets.index(default):]:
        build, probe, finish = proxy_costs(ctx, proxy_frames, preset)
        if build + probes * probe + finish <= ctx.clock.remaining() * 0.9:
            return preset
    return None


def final_reserve(ctx: JobContext) -> float:
    """Time to keep for the final encodes, the full verification and the join (kept back from probes)."""
    mpx = ctx.mpx(ctx.source.frame_count)
    preset = ctx.scenes[0].preset
    return 1.5 * (ctx.costs.encode_seconds(mpx, preset) * 0.6 + CALL_OVERHEAD * len(ctx.scenes)) \
        + verify_reserve(ctx)


def verify_subsample(ctx: JobContext) -> int:
    """1 (every frame, as the validator) unless the time left cannot pay for it."""
    mpx = ctx.mpx(ctx.source.frame_count)
    for subsample in (1, 2, 3, 5, 10):
        if ctx.costs.vmaf_seconds(mpx, subsample) * 1.3 < ctx.clock.remaining():
            if subsample > 1:
                ctx.notes.append(f"deadline: verified on every {subsample}th frame, not every frame")
            return subsample
    return 10


def can_afford(ctx: JobContext, allocation: Allocation) -> bool:
    """Whether encoding the scenes `allocation` needs (those not encoded yet) and verifying fits in time."""
    frames = sum(s.scene.frames for s, q in zip(ctx.scenes, allocation.qs) if q not in s.files)
    encode = ctx.costs.encode_seconds(ctx.mpx(frames), ctx.scenes[0].preset) + CALL_OVERHEAD
    return encode * 1.3 + verify_reserve(ctx) < ctx.clock.remaining()
