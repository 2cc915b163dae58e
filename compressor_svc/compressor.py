"""The compressor core (no gRPC): the smallest file whose VMAF-NEG meets the threshold, scene by scene.

probe → time a short encode (calibration) → scenes (PySceneDetect on a proxy) → plan the preset and
probes from the time left → per-scene quality search (probes encode whole scenes at the final settings)
→ split quality between scenes by the subnet's own score → encode what the probes did not already
produce → join by stream copy → verify the WHOLE file (VMAF + VMAF-NEG on every frame, the validator's
gates) → refine the split with what the verification measured (bounded) → the best verified candidate.

Time: the caller passes the seconds it can spend. When they run short the search stops, unprobed scenes
get a conservative quality at the fastest preset, and the first candidate falls back to the probe
encodes already made. Every ffmpeg call gets the remaining time as its timeout, and cancellation kills
every ffmpeg child (mesh.ffmpeg).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from pathlib import Path

from compressor_svc.allocation import choose_allocation, made_allocation, predicted_score, safe_probe
from compressor_svc.assemble import assemble
from compressor_svc.context import JobContext, SceneState
from compressor_svc.job import Candidate, CompressJob, CompressOptions, CompressOutcome, Targets
from compressor_svc.planning import (
    Clock,
    CostModel,
    can_afford,
    plan,
    plan_on_proxy,
    scene_detection_fits,
    verify_reserve,
)
from compressor_svc.probing import calibrate, search
from compressor_svc.proxy import (
    MAX_PROBES,
    PLANNED_PROBES,
    lean_windows,
    proxy_frames,
    search_on_proxy,
    worth_it,
)
from compressor_svc.scenes import Scene, detect_scenes
from compressor_svc.search import EXTRAPOLATE_VMAF, Allocation
from compressor_svc.verify import check_structure, learn_from, unverified, verify
from mesh.codecs import select_encoder
from mesh.errors import DeadlineTooShort, InvalidInput
from mesh.gates import failures
from mesh.media import MediaFacts, probe
from mesh.progress import ProgressFn, ProgressReporter, reporting

log = logging.getLogger(__name__)

# A lean job probes its proxy once, aiming LEAN_FIRST_MARGIN over the target (not 3: nothing verifies it
# afterwards anyway), and a second time only when the first reads more than EXTRAPOLATE_VMAF from the target:
# a typical first guess is far off on grainy sources (one probe left a 480p item at ratio 1.18, under the
# 1.25 gate).
LEAN_PROBES = 2
LEAN_FIRST_MARGIN = 1.0
# A refinement must be predicted to earn at least this much more than the best verified candidate.
MIN_SCORE_GAIN = 0.002


class Compressor:
    """One compression job; `run()` returns the outcome of the best verified candidate."""

    def __init__(self, source: Path, workdir: Path, job: CompressJob, options: CompressOptions, *,
                 budget_seconds: float, reporter: ProgressReporter, facts: MediaFacts | None = None) -> None:
        self.source_path = source
        self.facts = facts
        self.workdir = workdir
        self.job = job.validated()
        self.options = options
        self.clock = Clock(budget_seconds)
        self.reporter = reporter
        self.encoder = select_encoder(self.job.codec, allow_hardware=options.allow_hardware)

    async def run(self) -> CompressOutcome:
        self.workdir.mkdir(parents=True, exist_ok=True)
        source = self.facts
        if source is None:
            self.reporter.update("probe", message="reading the source")
            source = await asyncio.to_thread(probe, self.source_path)
        if source.width % 2 or source.height % 2:
            raise InvalidInput(f"{source.width}x{source.height}: yuv420p output needs even dimensions")
        ctx = JobContext(source_path=self.source_path, source=source, workdir=self.workdir, job=self.job,
                         options=self.options, targets=Targets.of(self.job, self.options), clock=self.clock,
                         costs=CostModel(self.encoder, self.options.threads), encoder=self.encoder,
                         reporter=self.reporter)
        try:
            if self.options.fixed_q is not None:
                best = await _fixed_quality(ctx, self.options.fixed_q)
            elif self.options.lean:
                best = await _lean(ctx)
            else:
                await calibrate(ctx)
                await _split(ctx)
                probes_per_scene = plan(ctx, faster_presets=not worth_it(ctx.source.frame_count))
                if probes_per_scene:
                    await search(ctx, probes_per_scene)
                elif worth_it(ctx.source.frame_count):
                    await _search_on_proxy(ctx)
                else:
                    ctx.notes.append("time budget too short for a quality search: conservative encode")
                best = await _finish(ctx)
        except TimeoutError:
            raise DeadlineTooShort("the time budget ran out before a verified output existed") from None
        return _outcome(ctx, best)


async def _search_on_proxy(ctx: JobContext) -> None:
    """Real size: whole-clip probes do not fit, so search a proxy of the clip's own frames (one scene)."""
    # When even the fastest preset seems not to fit, try it anyway: a probe runs only while it fits before
    # the final encode, and a first output whose verification does not fit is still delivered.
    fastest = ctx.options.preset or ctx.encoder.presets[-1]
    preset = plan_on_proxy(ctx, proxy_frames(ctx.source.frame_count), PLANNED_PROBES) or fastest
    ctx.notes.append(f"real size: searched on a proxy, preset {preset}")
    ctx.on_proxy = True
    ctx.scenes = [SceneState(Scene(0, 0, ctx.source.frame_count), preset)]
    await search_on_proxy(ctx, MAX_PROBES)


async def _lean(ctx: JobContext) -> Candidate:
    """Cost first: no calibration, scene detection or verification; a proxy of about a sixth of the clip
    probed (at most LEAN_PROBES times) at the fastest preset, then the one encode, whose VMAF-NEG is the
    search's prediction less the proxy's spread (format, ratio and bitrate gates still checked)."""
    frames = ctx.source.frame_count
    ctx.on_proxy = True
    ctx.scenes = [SceneState(Scene(0, 0, frames), ctx.options.preset or ctx.encoder.presets[-1])]
    await search_on_proxy(ctx, LEAN_PROBES, windows=lean_windows(frames), first_margin=LEAN_FIRST_MARGIN,
                          settle_within=EXTRAPOLATE_VMAF)
    state = ctx.scenes[0]
    if not state.probes:
        safe_probe(ctx, state)
    allocation = choose_allocation(ctx)
    candidate = await unverified(ctx, await assemble(ctx, allocation, 0), allocation, why="lean: not measured")
    check_structure(candidate)
    return candidate


async def _fixed_quality(ctx: JobContext, q: float) -> Candidate:
    """No search: the whole clip at one q (a stock miner's policy), still verified like any output."""
    preset = ctx.options.preset or ctx.encoder.default_preset
    ctx.scenes = [SceneState(Scene(0, 0, ctx.source.frame_count), preset)]
    allocation = Allocation((ctx.encoder.clamp(q),), 0.0, 0.0)
    candidate = await verify(ctx, await assemble(ctx, allocation, 0), allocation, 0)
    check_structure(candidate)
    return candidate


async def _split(ctx: JobContext) -> None:
    """One scene per shot when detection is on and affordable; one scene for the whole clip otherwise."""
    frames = ctx.source.frame_count
    scenes = [Scene(0, 0, frames)]
    if ctx.options.split_scenes and scene_detection_fits(ctx):
        ctx.reporter.update("scenes", 0, frames, "frames", "detecting scene cuts")
        scenes = await _detect_scenes(ctx) or scenes
        ctx.reporter.update("scenes", frames, frames, "frames", f"{len(scenes)} scene(s)")
    ctx.scenes = [SceneState(scene, ctx.encoder.default_preset) for scene in scenes]


async def _detect_scenes(ctx: JobContext) -> list[Scene]:
    """Scene cuts, or [] when detection fails: scenes only refine the search, one scene still works."""
    options = ctx.options
    min_frames = max(2, round(options.min_scene_seconds * float(ctx.source.fps)))
    try:
        return await detect_scenes(ctx.source_path, ctx.source.frame_count, ctx.workdir,
                                   min_frames=min_frames, max_scenes=options.max_scenes,
                                   threshold=options.scene_threshold, timeout=ctx.timeout())
    except TimeoutError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here only costs the per-scene split
        log.warning("scene detection failed; one scene", extra={"error": str(exc)})
        ctx.notes.append("scene detection failed: the clip was searched as one scene")
        return []


async def _finish(ctx: JobContext) -> Candidate:
    """Build, verify and refine candidates; return the one the subnet would pay most for."""
    for state in ctx.scenes:
        if not state.probes:
            safe_probe(ctx, state)
    candidates: list[Candidate] = []
    tried: set[tuple[float, ...]] = set()
    for attempt in range(ctx.options.refine_passes + 1):
        allocation = choose_allocation(ctx)
        if allocation.qs in tried:
            break
        if candidates:
            best = _best(candidates)
            if best.meets and predicted_score(ctx, allocation) <= best.score + MIN_SCORE_GAIN:
                break
            if not can_afford(ctx, allocation):
                ctx.notes.append("refinement skipped: not enough time left")
                break
        tried.add(allocation.qs)
        output = None
        try:
            if candidates:
                output = await assemble(ctx, allocation, attempt)
            else:
                allocation, output = await _first_output(ctx, allocation)
            candidate = await verify(ctx, output, allocation, attempt)
        except TimeoutError:
            if candidates:
                ctx.notes.append("refinement stopped by the deadline")
                break
            if output is None:
                raise
            candidate = await unverified(ctx, output, allocation)  # encoded, but no time to measure it
        candidates.append(candidate)
        check_structure(candidate)
        learn_from(ctx, candidate)
        ctx.targets.raise_floor_if_lagging(candidate.scores)
    return _best(candidates)


async def _first_output(ctx: JobContext, allocation: Allocation) -> tuple[Allocation, Path]:
    """The first candidate's file. Its encodes keep the verification's time back; when they run out
    of time, the best split among the encodes the probes already made is joined instead."""
    try:
        return allocation, await assemble(ctx, allocation, 0, reserve=verify_reserve(ctx))
    except TimeoutError:
        made = made_allocation(ctx)
        ctx.notes.append("deadline: quality chosen among the probe encodes already made")
        return made, await assemble(ctx, made, 0)


def _best(candidates: list[Candidate]) -> Candidate:
    return max(candidates, key=lambda c: (c.meets, c.score, c.scores.vmaf_neg))


def _outcome(ctx: JobContext, best: Candidate) -> CompressOutcome:
    final = ctx.workdir / "output.mp4"
    shutil.move(best.path, final)
    ratio = ctx.source.size_bytes / best.media.size_bytes
    notes = list(dict.fromkeys(ctx.notes))
    if not best.meets:
        notes.append(f"threshold not met: VMAF-NEG {best.scores.vmaf_neg:.2f} < {ctx.targets.aim:.2f} "
                     f"(T {ctx.job.threshold:g} + margin) or a gate failed "
                     f"({failures(best.gates) or 'none'}); best candidate returned")
    if best.score <= 0:
        notes.append("no candidate can earn a positive subnet score")
    ctx.reporter.finish()
    return CompressOutcome(
        output=final, source=ctx.source, media=dataclasses.replace(best.media, path=final),
        vmaf=best.scores.vmaf, vmaf_neg=best.scores.vmaf_neg, ratio=ratio, predicted_score=best.score,
        meets_threshold=best.meets, encoder=ctx.encoder.name, preset=ctx.scenes[0].preset,
        scene_count=len(ctx.scenes), probes=ctx.probe_count, note="; ".join(notes), gates=best.gates,
        timings=dict(ctx.reporter.timings))


async def compress(source: Path, workdir: Path, job: CompressJob, options: CompressOptions | None = None, *,
                   budget_seconds: float, on_progress: ProgressFn | None = None,
                   reporter: ProgressReporter | None = None, facts: MediaFacts | None = None) -> CompressOutcome:
    """Compress `source` for `job` within `budget_seconds`; the result lands in `workdir/output.mp4`.

    `facts` is the source's probe when the caller already has it. Progress goes to `on_progress`, or into
    the caller's `reporter` (whose emitting the caller runs); the outcome's timings are that reporter's
    seconds per stage."""
    async with reporting(reporter, on_progress) as progress:
        compressor = Compressor(source, workdir, job, options or CompressOptions(),
                                budget_seconds=budget_seconds, reporter=progress, facts=facts)
        return await compressor.run()
