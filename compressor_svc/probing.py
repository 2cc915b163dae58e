"""Measuring: a calibration encode that times this machine, and the per-scene quality search.

A probe encodes a whole scene at its final preset and measures its VMAF-NEG on every frame (by default):
libvmaf's n_subsample skews VMAF-NEG upward (1.5-2 points at n_subsample=2 on our clips), which made first
candidates miss the target. Rounds go round-robin over the scenes, so a short budget degrades every scene
evenly, and stop before they eat the time the final encodes and the verification need.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine

from compressor_svc.assemble import encode_scene
from compressor_svc.context import JobContext, SceneState
from compressor_svc.planning import CALL_OVERHEAD, final_reserve, probe_subsample
from compressor_svc.scenes import Scene
from compressor_svc.search import Probe, next_probe
from mesh.vmaf import measure

log = logging.getLogger(__name__)

SEARCH_CUT_SHORT = "search cut short by the deadline"


async def calibrate(ctx: JobContext) -> None:
    """Time a short encode and its VMAF on this machine, at this resolution, before planning: the
    rough starting rates can be off several times (small frames encode slower per pixel, other
    jobs share the cores). Skipped when it would take more than 5% of the time left."""
    frames = min(ctx.source.frame_count, max(30, round(float(ctx.source.fps))))
    mpx = ctx.mpx(frames)
    preset = ctx.encoder.default_preset
    if ctx.costs.encode_seconds(mpx, preset) * 4 + 2 * CALL_OVERHEAD > ctx.clock.remaining() * 0.05:
        return
    ctx.reporter.update("search", message=f"timing {ctx.encoder.name} on {frames} frames")
    state = SceneState(Scene(-1, 0, frames), preset)
    path = await encode_scene(ctx, state, ctx.encoder.guess(ctx.targets.search))
    started = time.monotonic()
    await measure(path, ctx.source_path, models=("vmaf_neg",), n_threads=ctx.threads_per_job,
                  frame_count=frames, timeout=ctx.timeout())
    ctx.costs.observe_vmaf(mpx, 1, 1, time.monotonic() - started)
    path.unlink(missing_ok=True)


async def search(ctx: JobContext, probes_per_scene: int) -> None:
    """Round-robin probe rounds over the scenes; when a whole round no longer fits, the scenes furthest
    from the target are probed first."""
    target = ctx.targets.search
    planned = probes_per_scene * len(ctx.scenes)
    ctx.reporter.update("search", 0, planned, "probes", f"searching {len(ctx.scenes)} scene(s)")
    for _ in range(probes_per_scene):
        work = []
        for index, state in enumerate(ctx.scenes):
            q = next_probe(state.probes, target, ctx.encoder, _warm_start(ctx, index))
            if q is not None:
                work.append((state, q))
        if not work:
            return
        affordable = _affordable_probes(ctx, work)
        if len(affordable) < len(work):
            ctx.notes.append(SEARCH_CUT_SHORT)
        if not affordable:
            return
        try:
            await _all_or_none([_probe(ctx, state, q, planned) for state, q in affordable])
        except TimeoutError:
            ctx.notes.append(SEARCH_CUT_SHORT)
            return


def _affordable_probes(ctx: JobContext,
                       work: list[tuple[SceneState, float]]) -> list[tuple[SceneState, float]]:
    """The probes of this round that fit in the time left before the final reserve, neediest first."""
    target = ctx.targets.search

    def need(item: tuple[SceneState, float]) -> float:
        passing = [p.vmaf_neg - target for p in item[0].probes if p.vmaf_neg >= target]
        return min(passing) if passing else math.inf

    left = (ctx.clock.remaining() - final_reserve(ctx)) * max(1, ctx.options.parallel)
    chosen = []
    for state, q in sorted(work, key=need, reverse=True):
        mpx = ctx.mpx(state.scene.frames)
        cost = (ctx.costs.encode_seconds(mpx, state.preset) + 2 * CALL_OVERHEAD
                + ctx.costs.vmaf_seconds(mpx, probe_subsample(ctx, state.scene.frames), 1))
        if cost <= left:
            chosen.append((state, q))
            left -= cost
    return chosen


def _warm_start(ctx: JobContext, index: int) -> float | None:
    """A scene's first probe starts from the nearest already-probed scene's answer."""
    for state in sorted(ctx.scenes, key=lambda s: abs(s.scene.index - index)):
        if state.probes and state.scene.index != index:
            return state.curve(ctx.encoder).highest_q(ctx.targets.search)
    return None


async def _probe(ctx: JobContext, state: SceneState, q: float, total_planned: int) -> None:
    """Encode the scene at `q` (kept for reuse) and measure its VMAF-NEG; both keep the final reserve."""
    scene = state.scene
    mpx = ctx.mpx(scene.frames)
    path = await encode_scene(ctx, state, q, reserve=final_reserve(ctx))
    subsample = probe_subsample(ctx, scene.frames)
    async with ctx.slots:
        started = time.monotonic()
        scores = await measure(path, ctx.source_path, models=("vmaf_neg",), n_subsample=subsample,
                               n_threads=ctx.threads_per_job, reference_start=scene.start,
                               frame_count=scene.frames, reference_fps=ctx.source.fps,
                               timeout=ctx.timeout(final_reserve(ctx)))
        ctx.costs.observe_vmaf(mpx, subsample, 1, time.monotonic() - started)
    result = Probe(q, scores.vmaf_neg, path.stat().st_size)
    state.record(result)
    ctx.probe_count += 1
    log.debug("probe", extra={"scene": scene.index, "q": q, "vmaf_neg": round(result.vmaf_neg, 3),
                              "bytes": result.size, "preset": state.preset})
    ctx.reporter.update("search", ctx.probe_count, total_planned, "probes",
                        f"scene {scene.index + 1}/{len(ctx.scenes)} probe {len(state.probes)}: "
                        f"{ctx.encoder.name} q {q:g} vmaf-neg {result.vmaf_neg:.2f} size {result.size} B")


async def _all_or_none(coros: list[Coroutine[object, object, None]]) -> None:
    """Run the coroutines concurrently; the first failure cancels the rest (and their ffmpeg children)."""
    tasks = [asyncio.ensure_future(coro) for coro in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
