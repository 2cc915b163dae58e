"""The compressor core (no gRPC): the smallest file whose VMAF-NEG meets the threshold, scene by scene.

probe → time a short encode (calibration) → scenes (PySceneDetect on a proxy) → per-scene quality search
(probes encode the whole scene at the final settings and measure its VMAF-NEG) → split quality between
scenes by the subnet's own score → encode what the probes did not already produce → join by stream copy
→ verify the WHOLE file (VMAF + VMAF-NEG on every frame, the validator's gates) → refine the split with
what the verification measured (bounded) → return the best verified candidate.

Probes measure every frame by default: libvmaf's n_subsample skews VMAF-NEG upward (by 1.5-2 points at
n_subsample=2 on our clips), which made first candidates miss the target.

Time: the caller passes the seconds it can spend. The plan (preset, probes per scene) comes from rates
the calibration measured; when time runs short the search stops, unprobed scenes get a conservative
quality at the fastest preset, and the first candidate falls back to the probe encodes already made.
Every ffmpeg call gets the remaining time as its timeout, and cancellation kills every ffmpeg child
(mesh.ffmpeg). The output is silent (validator inputs have no audio).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from compressor_svc.encoders import Encoder, normalize_codec, select_encoder
from compressor_svc.scenes import Scene, detect_scenes
from compressor_svc.search import (EXTRAPOLATE_VMAF, Allocation, Probe, SceneCurve, allocations, next_probe,
                                   uniform_allocation)
from mesh.errors import GateFailed, InvalidInput, MeshError
from mesh.ffmpeg import run_ffmpeg
from mesh.gates import BITRATE_CAP_FACTOR, Gate, all_passed, compression_gates, failures, vmaf_gates
from mesh.media import MediaFacts, probe
from mesh.scoring import compression_rate, head_compression_score
from mesh.vmaf import VmafScores, frame_seek_args, measure

log = logging.getLogger(__name__)

MODES = ("CRF", "VBR", "CBR")
STRUCTURAL_GATES = {"resolution", "codec", "container", "profile", "pix_fmt", "sar", "fps", "color_tags",
                    "frame_count"}
BITRATE_SAFETY = 0.97
# Under a bitrate cap the best output may sit far below the VMAF target the probes aimed at.
CAPPED_REACH_VMAF = 25.0
# A scene nobody had time to probe is encoded this many VMAF points above the target (by the nearest
# curves, or the encoder's typical q), and its size is guessed from the probed scenes or this ratio.
SAFE_MARGIN_VMAF = 3.0
GUESSED_RATIO = 8.0
HEARTBEAT_SECONDS = 0.5
MAX_VMAF_DELTA = 3.0
MIN_SCORE_GAIN = 0.002
# Fixed cost of one ffmpeg run (start, probe, encoder init), on top of the per-megapixel rates below.
CALL_OVERHEAD = 0.25
# Rough throughput (megapixels per second on 2 cores, default preset, ~400x200 to 720p frames) until the
# calibration encode measures this machine.
ENCODE_MPX_PER_S = {"libsvtav1": 20.0, "libx265": 6.0, "libx264": 15.0, "libvpx-vp9": 12.0}
HARDWARE_MPX_PER_S = 400.0
VMAF_MPX_PER_S = 27.0
SCENE_MPX_PER_S = 150.0


class DeadlineTooShort(MeshError):
    """Not even the fastest safe encode fits in the time left."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


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
        if mode not in MODES:
            raise InvalidInput(f"codec mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if mode != "CRF" and self.bitrate_mbps <= 0:
            raise InvalidInput(f"{mode} mode needs a target bitrate > 0 Mbit/s")
        return CompressJob(self.threshold, normalize_codec(self.codec), mode, self.bitrate_mbps)


@dataclass(frozen=True)
class CompressOptions:
    """How hard to try. The defaults are the service's; the benchmark switches parts off for baselines."""

    vmaf_margin: float = 0.3
    prediction_margin: float = 0.2
    max_probes_per_scene: int = 5
    probe_subsample_max: int = 1  # > 1 is cheaper but biased high (see the module docstring)
    min_scene_seconds: float = 1.5
    max_scenes: int = 24
    scene_threshold: float = 27.0
    refine_passes: int = 2
    preset: str | None = None
    fixed_q: float | None = None
    split_scenes: bool = True
    select_by_score: bool = True
    tuned: bool = True
    allow_hardware: bool = True
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    parallel: int = 1


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    done: int = 0
    total: int = 0
    unit: str = ""
    message: str = ""
    vmaf_neg: float = 0.0
    size_bytes: int = 0


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
    timings: list[tuple[str, float]]


ProgressCallback = Callable[[ProgressEvent], None]


class Clock:
    def __init__(self, budget_seconds: float) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + budget_seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class Reporter:
    """Keeps the latest progress and re-sends it at least every HEARTBEAT_SECONDS while work runs."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.latest = ProgressEvent("probe")
        self._task: asyncio.Task | None = None

    def emit(self, event: ProgressEvent) -> None:
        self.latest = event
        if self.callback is not None:
            self.callback(event)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self.emit(self.latest)

    def __enter__(self) -> Reporter:
        if self.callback is not None:
            self._task = asyncio.create_task(self._beat(), name="compress-heartbeat")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


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
        return mpx * (0.35 + 0.65 / subsample) * (1.0 if models == 1 else 1.8)

    def encode_seconds(self, mpx: float, preset: str) -> float:
        return mpx * self.encode * self.encoder.cost(preset)

    def vmaf_seconds(self, mpx: float, subsample: int = 1, models: int = 2) -> float:
        return self._vmaf_work(mpx, subsample, models) * self.vmaf

    def observe_encode(self, mpx: float, preset: str, seconds: float) -> None:
        measured = _net_of_overhead(seconds) / max(mpx * self.encoder.cost(preset), 1e-9)
        self.encode = _blend(self.encode, measured)

    def observe_vmaf(self, mpx: float, subsample: int, models: int, seconds: float) -> None:
        measured = _net_of_overhead(seconds) / max(self._vmaf_work(mpx, subsample, models), 1e-9)
        self.vmaf = _blend(self.vmaf, measured)


def _net_of_overhead(seconds: float) -> float:
    """A run's time without the fixed start-up cost, which the estimates add per call."""
    return max(seconds - CALL_OVERHEAD, 0.2 * seconds)


def _blend(estimate: float, measured: float) -> float:
    """Move halfway to a measurement, at most 4x per step: one run slowed by a load spike (or sped up
    by a cache) must not swing the whole plan."""
    return 0.5 * estimate + 0.5 * min(estimate * 4, max(estimate / 4, measured))


@dataclass
class SceneState:
    scene: Scene
    preset: str
    probes: list[Probe] = field(default_factory=list)
    files: dict[float, Path] = field(default_factory=dict)

    def curve(self, encoder: Encoder, reach_vmaf: float = EXTRAPOLATE_VMAF) -> SceneCurve:
        return SceneCurve(self.probes, encoder, self.scene.frames, reach_vmaf)

    def record(self, probe_result: Probe) -> None:
        """Add a measurement; one at the same q replaces the older (a full-frame value beats a probe's)."""
        self.probes = [p for p in self.probes if p.q != probe_result.q] + [probe_result]


@dataclass(frozen=True)
class Candidate:
    path: Path
    media: MediaFacts
    scores: VmafScores
    qs: tuple[float, ...]
    gates: list[Gate]
    score: float
    meets: bool


class Compressor:
    """One compression job; `run()` returns the best verified candidate."""

    def __init__(self, source: Path, workdir: Path, job: CompressJob, options: CompressOptions, *,
                 budget_seconds: float, on_progress: ProgressCallback | None = None) -> None:
        self.source_path = source
        self.workdir = workdir
        self.job = job.validated()
        self.options = options
        self.clock = Clock(budget_seconds)
        self.reporter = Reporter(on_progress)
        self.encoder = select_encoder(self.job.codec, allow_hardware=options.allow_hardware)
        self.costs = CostModel(self.encoder, options.threads)
        self.threads_per_job = max(1, options.threads // max(1, options.parallel))
        self.slots = asyncio.Semaphore(max(1, options.parallel))
        self.timings: list[tuple[str, float]] = []
        self.notes: list[str] = []
        self.probe_count = 0
        self.source: MediaFacts
        self.scenes: list[SceneState] = []

    # -- helpers ------------------------------------------------------------------------------------
    @property
    def aim(self) -> float:
        """VMAF-NEG the verified whole must reach: the threshold plus the configured margin."""
        return self.job.threshold + self.options.vmaf_margin

    def _mpx(self, frames: int) -> float:
        return frames * self.source.width * self.source.height / 1e6

    def _bitrate_cap_bytes(self) -> float | None:
        if self.job.mode == "CRF":
            return None
        return self.job.bitrate_mbps * 1e6 * BITRATE_CAP_FACTOR * BITRATE_SAFETY * self.source.duration / 8

    def _timeout(self, reserve: float = 0.0) -> float:
        left = self.clock.remaining() - reserve
        if left <= 0:
            raise TimeoutError("time budget spent")
        return left

    @contextlib.contextmanager
    def _stage(self, name: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings.append((name, time.monotonic() - started))

    def _progress(self, stage: str, done: int = 0, total: int = 0, unit: str = "", message: str = "",
                  vmaf_neg: float = 0.0, size: int = 0) -> None:
        self.reporter.emit(ProgressEvent(stage, done, total, unit, message, vmaf_neg, size))

    def _encode_args(self, scene: Scene, q: float, preset: str, dest: Path) -> list[str]:
        colour = []
        for option, value in (("-color_primaries", self.source.color_primaries),
                              ("-color_trc", self.source.color_transfer),
                              ("-colorspace", self.source.color_space),
                              ("-color_range", self.source.color_range)):
            if value:
                colour += [option, value]
        return ["-y", "-loglevel", "error", *frame_seek_args(scene.start, self.source.fps),
                "-i", str(self.source_path), "-map", "0:v:0", "-an", "-sn", "-dn",
                "-frames:v", str(scene.frames),
                "-fps_mode", "passthrough", "-vf", "setsar=1", "-pix_fmt", "yuv420p", *colour,
                *self.encoder.args(q, preset, threads=self.threads_per_job, tuned=self.options.tuned),
                "-movflags", "+faststart", str(dest)]

    async def _encode_scene(self, state: SceneState, q: float, reserve: float = 0.0) -> Path:
        """The scene at `q` with its preset; an encode made earlier (by a probe) is reused."""
        if q in state.files:
            return state.files[q]
        dest = self.workdir / f"scene{state.scene.index:03d}-{state.preset}-q{q:g}.mp4"
        async with self.slots:
            started = time.monotonic()
            await run_ffmpeg(self._encode_args(state.scene, q, state.preset, dest),
                             timeout=self._timeout(reserve))
            self.costs.observe_encode(self._mpx(state.scene.frames), state.preset, time.monotonic() - started)
        state.files[q] = dest
        return dest

    # -- stages -------------------------------------------------------------------------------------
    async def run(self) -> CompressOutcome:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.reporter:
            self._progress("probe", message="reading the source")
            with self._stage("probe"):
                self.source = await asyncio.to_thread(probe, self.source_path)
            if self.source.width % 2 or self.source.height % 2:
                raise InvalidInput(f"{self.source.width}x{self.source.height}: "
                                   "yuv420p output needs even dimensions")
            try:
                if self.options.fixed_q is not None:
                    return self._outcome(await self._fixed_quality(self.options.fixed_q))
                await self._calibrate()
                await self._split()
                probes_per_scene = self._plan()
                if probes_per_scene:
                    await self._search(probes_per_scene)
                return self._outcome(await self._finish())
            except TimeoutError:
                raise DeadlineTooShort("the time budget ran out before a verified output existed") from None

    async def _fixed_quality(self, q: float) -> Candidate:
        """No search: the whole clip at one q (a stock miner's policy), still verified like any output."""
        preset = self.options.preset or self.encoder.default_preset
        self.scenes = [SceneState(Scene(0, 0, self.source.frame_count), preset)]
        allocation = Allocation((self.encoder.clamp(q),), 0.0, 0.0)
        candidate = await self._verify(await self._assemble(allocation, 0), allocation, 0)
        self._check_structure(candidate)
        return candidate

    @staticmethod
    def _check_structure(candidate: Candidate) -> None:
        """A wrong size, codec, container or frame count is a bug, not a weak score: fail the job."""
        structural = [g for g in candidate.gates if g.name in STRUCTURAL_GATES and not g.passed]
        if structural:
            raise GateFailed(f"output failed the validator's gates: {failures(structural)}")

    def _expected_seconds(self, preset: str, probes: float, scenes: int) -> float:
        """Search (each probe encodes and measures every scene once), final encodes, verification, one
        refinement: what a job at `preset` should cost, with the per-call overheads."""
        mpx = self._mpx(self.source.frame_count)
        encode = self.costs.encode_seconds(mpx, preset)
        probe_vmaf = self.costs.vmaf_seconds(mpx, self.options.probe_subsample_max, models=1)
        verify = self.costs.vmaf_seconds(mpx) + 2 * CALL_OVERHEAD
        search = probes * (encode + probe_vmaf + 2 * CALL_OVERHEAD * scenes)
        return search + 2 * (0.5 * encode + verify + CALL_OVERHEAD * scenes)

    async def _calibrate(self) -> None:
        """Time a short encode and its VMAF on this machine, at this resolution, before planning: the
        rough starting rates can be off several times (small frames encode slower per pixel, other
        jobs share the cores)."""
        frames = min(self.source.frame_count, max(30, round(float(self.source.fps))))
        mpx = self._mpx(frames)
        preset = self.encoder.default_preset
        if self.costs.encode_seconds(mpx, preset) * 4 + 2 * CALL_OVERHEAD > self.clock.remaining() * 0.05:
            return
        self._progress("search", message=f"timing {self.encoder.name} on {frames} frames")
        state = SceneState(Scene(-1, 0, frames), preset)
        path = await self._encode_scene(state, self.encoder.guess(self._search_target()))
        started = time.monotonic()
        await measure(path, self.source_path, models=("vmaf_neg",), n_threads=self.threads_per_job,
                      frame_count=frames, timeout=self._timeout())
        self.costs.observe_vmaf(mpx, 1, 1, time.monotonic() - started)
        path.unlink(missing_ok=True)

    def _plan(self) -> int:
        """Give every scene a preset and return the probes per scene (0: no search, one safe encode).

        Preference order, first whose expected job fits in 70% of the time left: a full search (3 probes
        per scene) at the slowest preset down to the encoder's default, then a shorter search at the
        default, then faster presets. A slower preset saves 10-30% of the bytes at equal VMAF, so time
        buys presets first; but a preset faster than the default loses more than a shorter search does.
        """
        presets = [self.options.preset] if self.options.preset else list(self.encoder.presets)
        default = self.encoder.default_preset if self.encoder.default_preset in presets else presets[0]
        slow_side = presets[:presets.index(default) + 1]
        fast_side = presets[presets.index(default) + 1:]
        plans = [(preset, 3.0) for preset in slow_side] + [(default, 2.0), (default, 1.0)]
        plans += [(preset, 1.0) for preset in fast_side]
        plans.append((presets[-1], 1.0))
        budgets = [self.clock.remaining() * 0.7] * (len(plans) - 1) + [self.clock.remaining()]
        chosen, probes = next(((preset, probes) for (preset, probes), budget in zip(plans, budgets)
                               if self._expected_seconds(preset, probes, len(self.scenes)) <= budget),
                              (presets[-1], 0.0))
        for state in self.scenes:
            state.preset = chosen
        if not probes:
            self.notes.append("time budget too short for a quality search: conservative encode")
            return 0
        return self.options.max_probes_per_scene

    async def _split(self) -> None:
        frames = self.source.frame_count
        scenes = [Scene(0, 0, frames)]
        if self.options.split_scenes and self._mpx(frames) / SCENE_MPX_PER_S < self.clock.remaining() * 0.1:
            self._progress("scenes", 0, frames, "frames", "detecting scene cuts")
            with self._stage("scenes"):
                scenes = await self._detect_scenes() or scenes
            self._progress("scenes", frames, frames, "frames", f"{len(scenes)} scene(s)")
        self.scenes = [SceneState(scene, self.encoder.default_preset) for scene in scenes]

    async def _detect_scenes(self) -> list[Scene]:
        """Scene cuts, or [] when detection fails: scenes only refine the search, one scene still works."""
        min_frames = max(2, round(self.options.min_scene_seconds * float(self.source.fps)))
        try:
            return await detect_scenes(self.source_path, self.source.frame_count, self.workdir,
                                       min_frames=min_frames, max_scenes=self.options.max_scenes,
                                       threshold=self.options.scene_threshold, timeout=self._timeout())
        except TimeoutError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure here only costs the per-scene split
            log.warning("scene detection failed; one scene", extra={"error": str(exc)})
            self.notes.append("scene detection failed: the clip was searched as one scene")
            return []

    def _probe_subsample(self, frames: int) -> int:
        return max(1, min(self.options.probe_subsample_max, frames // 30))

    def _final_reserve(self) -> float:
        """Time to keep for the final encodes, the full verification and the join."""
        mpx = self._mpx(self.source.frame_count)
        preset = self.scenes[0].preset
        return 1.5 * (self.costs.encode_seconds(mpx, preset) * 0.6 + CALL_OVERHEAD * len(self.scenes)) \
            + self._verify_reserve()

    async def _probe(self, state: SceneState, q: float, total_planned: int) -> None:
        scene = state.scene
        mpx = self._mpx(scene.frames)
        path = await self._encode_scene(state, q, reserve=self._final_reserve())
        subsample = self._probe_subsample(scene.frames)
        async with self.slots:
            started = time.monotonic()
            scores = await measure(path, self.source_path, models=("vmaf_neg",), n_subsample=subsample,
                                   n_threads=self.threads_per_job, reference_start=scene.start,
                                   frame_count=scene.frames, reference_fps=self.source.fps,
                                   timeout=self._timeout(self._final_reserve()))
            self.costs.observe_vmaf(mpx, subsample, 1, time.monotonic() - started)
        result = Probe(q, scores.vmaf_neg, path.stat().st_size)
        state.record(result)
        self.probe_count += 1
        log.debug("probe", extra={"scene": scene.index, "q": q, "vmaf_neg": round(result.vmaf_neg, 3),
                                  "bytes": result.size, "preset": state.preset})
        self._progress("search", self.probe_count, total_planned, "probes",
                       f"scene {scene.index + 1}/{len(self.scenes)} probe {len(state.probes)}: "
                       f"{self.encoder.name} q {q:g} vmaf-neg {result.vmaf_neg:.2f} size {result.size} B",
                       result.vmaf_neg, result.size)

    def _search_target(self) -> float:
        return self.aim + self.options.prediction_margin

    async def _search(self, probes_per_scene: int) -> None:
        """Round-robin probe rounds over the scenes, so a short budget degrades every scene evenly; when a
        whole round no longer fits, the scenes furthest from the target are probed first."""
        target = self._search_target()
        planned = probes_per_scene * len(self.scenes)
        with self._stage("search"):
            for _ in range(probes_per_scene):
                work = []
                for index, state in enumerate(self.scenes):
                    q = next_probe(state.probes, target, self.encoder, self._warm_start(index, target))
                    if q is not None:
                        work.append((state, q))
                if not work:
                    return
                affordable = self._affordable_probes(work, target)
                if len(affordable) < len(work):
                    self.notes.append("search cut short by the deadline")
                if not affordable:
                    return
                try:
                    await _all_or_none([self._probe(state, q, planned) for state, q in affordable])
                except TimeoutError:
                    self.notes.append("search cut short by the deadline")
                    return

    def _affordable_probes(self, work: list[tuple[SceneState, float]],
                           target: float) -> list[tuple[SceneState, float]]:
        """The probes of this round that fit in the time left before the final reserve, neediest first."""
        def need(item: tuple[SceneState, float]) -> float:
            passing = [p.vmaf_neg - target for p in item[0].probes if p.vmaf_neg >= target]
            return min(passing) if passing else math.inf

        left = (self.clock.remaining() - self._final_reserve()) * max(1, self.options.parallel)
        chosen = []
        for state, q in sorted(work, key=need, reverse=True):
            mpx = self._mpx(state.scene.frames)
            cost = (self.costs.encode_seconds(mpx, state.preset) + 2 * CALL_OVERHEAD
                    + self.costs.vmaf_seconds(mpx, self._probe_subsample(state.scene.frames), 1))
            if cost <= left:
                chosen.append((state, q))
                left -= cost
        return chosen

    def _warm_start(self, index: int, target: float) -> float | None:
        """A scene's first probe starts from the nearest already-probed scene's answer."""
        for state in sorted(self.scenes, key=lambda s: abs(s.scene.index - index)):
            if state.probes and state.scene.index != index:
                return state.curve(self.encoder).highest_q(target)
        return None

    # -- choosing, encoding and verifying ------------------------------------------------------------
    def _safe_probe(self, state: SceneState) -> None:
        """An unprobed scene gets a conservative quality, predicted (not measured) to clear the target."""
        probed = [s for s in self.scenes if s.probes]
        safe = self._search_target() + SAFE_MARGIN_VMAF
        if probed:
            q = min(s.curve(self.encoder).highest_q(safe) for s in probed)
            per_frame = sum(min(p.size for p in s.probes) / s.scene.frames for s in probed) / len(probed)
        else:
            q = self.encoder.guess(safe)
            per_frame = self.source.size_bytes / self.source.frame_count / GUESSED_RATIO
        state.preset = self.encoder.presets[-1]
        state.probes.append(Probe(q, safe, int(per_frame * state.scene.frames)))

    def _predicted_score(self, allocation: Allocation) -> float:
        """What the subnet would pay for a predicted split, judged pessimistically (VMAF less the margins)."""
        pessimistic = allocation.vmaf_neg - self.options.prediction_margin - self.options.vmaf_margin
        rate = min(1.0, allocation.size / self.source.size_bytes)
        return head_compression_score(pessimistic, rate, self.job.threshold) if rate > 0 else 0.0

    def _predicted_key(self, allocation: Allocation, floor: float) -> tuple:
        """Rank splits: under the bitrate cap first, then reaching the target, then the predicted score.
        When the target is out of reach under a cap, the best quality under it wins."""
        cap = self._bitrate_cap_bytes()
        within_cap = cap is None or allocation.size <= cap
        meets = allocation.vmaf_neg >= floor
        if not meets and cap is not None:
            return (within_cap, meets, allocation.vmaf_neg, -allocation.size)
        return (within_cap, meets, self._predicted_score(allocation),
                allocation.vmaf_neg if not meets else -allocation.size)

    def _reach(self) -> float:
        return EXTRAPOLATE_VMAF if self.job.mode == "CRF" else CAPPED_REACH_VMAF

    def _choose_allocation(self, floor: float) -> Allocation:
        """The split the subnet would pay most for; when encoding it would not fit in the time left,
        the best split among the scene encodes the probes already made."""
        choice = self._pick([s.curve(self.encoder, self._reach()) for s in self.scenes], floor)
        if self._can_afford(choice):
            return choice
        self.notes.append("deadline: quality chosen among the probe encodes already made")
        return self._made_allocation(floor)

    def _pick(self, curves: list[SceneCurve], floor: float,
              grids: list[np.ndarray] | None = None) -> Allocation:
        if not self.options.select_by_score:
            return uniform_allocation(curves, floor, grids)
        options = [*allocations(curves, grids), uniform_allocation(curves, floor, grids)]
        return max(options, key=lambda a: self._predicted_key(a, floor))

    async def _join(self, parts: list[Path], dest: Path) -> Path:
        if len(parts) == 1:
            await run_ffmpeg(["-y", "-loglevel", "error", "-i", str(parts[0]), "-map", "0:v:0", "-c", "copy",
                              "-movflags", "+faststart", str(dest)], timeout=self._timeout())
            return dest
        listing = dest.with_suffix(".txt")
        listing.write_text("".join(f"file '{part.resolve()}'\n" for part in parts), encoding="utf-8")
        await run_ffmpeg(["-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                          "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", str(dest)],
                         timeout=self._timeout())
        return dest

    async def _assemble(self, allocation: Allocation, attempt: int, reserve: float = 0.0) -> Path:
        """Encode the scenes the probes did not already produce and join them; keeps `reserve` seconds."""
        with self._stage("encode"):
            parts = []
            for done, (state, q) in enumerate(zip(self.scenes, allocation.qs)):
                self._progress("encode", done, len(self.scenes), "scenes",
                               f"scene {done + 1}/{len(self.scenes)}: {self.encoder.name} q {q:g}")
                parts.append(await self._encode_scene(state, q, reserve))
            return await self._join(parts, self.workdir / f"candidate-{attempt}.mp4")

    async def _verify(self, output: Path, allocation: Allocation, attempt: int) -> Candidate:
        """The validator's checks on the whole file: gates, VMAF and VMAF-NEG on every frame."""
        with self._stage("verify"):
            media = await asyncio.to_thread(probe, output)
            self._progress("verify", 0, self.source.frame_count, "frames",
                           f"full VMAF + VMAF-NEG of candidate {attempt + 1}", size=media.size_bytes)
            subsample = self._verify_subsample()
            started = time.monotonic()
            scores = await measure(output, self.source_path, n_subsample=subsample,
                                   n_threads=self.options.threads, timeout=self._timeout())
            self.costs.observe_vmaf(self._mpx(self.source.frame_count), subsample, 2,
                                    time.monotonic() - started)
        gates = [*compression_gates(self.source, media, self.job.codec, self.job.mode, self.job.bitrate_mbps),
                 *vmaf_gates(scores.vmaf, scores.vmaf_neg, self.job.threshold, MAX_VMAF_DELTA)]
        rate = compression_rate(self.source.size_bytes, media.size_bytes)
        passed = all_passed(gates)
        score = head_compression_score(scores.vmaf_neg, rate, self.job.threshold) if passed else 0.0
        meets = passed and scores.vmaf_neg >= self.aim
        self._progress("verify", self.source.frame_count, self.source.frame_count, "frames",
                       f"candidate {attempt + 1}: vmaf {scores.vmaf:.2f} vmaf-neg {scores.vmaf_neg:.2f} "
                       f"ratio {1 / rate:.2f} score {score:.3f}", scores.vmaf_neg, media.size_bytes)
        return Candidate(output, media, scores, allocation.qs, gates, score, meets)

    def _verify_reserve(self) -> float:
        """Seconds the join and a full verification need, with slack (kept back from final encodes)."""
        return 1.5 * (self.costs.vmaf_seconds(self._mpx(self.source.frame_count)) + 3 * CALL_OVERHEAD)

    def _verify_subsample(self) -> int:
        """1 (every frame, as the validator) unless the time left cannot pay for it."""
        mpx = self._mpx(self.source.frame_count)
        for subsample in (1, 2, 3, 5, 10):
            if self.costs.vmaf_seconds(mpx, subsample) * 1.3 < self.clock.remaining():
                if subsample > 1:
                    self.notes.append(f"deadline: verified on every {subsample}th frame, not every frame")
                return subsample
        return 10

    def _learn_from(self, candidate: Candidate) -> None:
        """Each scene's slice of the full verification becomes an exact point on its curve."""
        for state, q in zip(self.scenes, candidate.qs):
            measured = candidate.scores.score("vmaf_neg", state.scene.start, state.scene.end)
            path = state.files.get(q)
            size = path.stat().st_size if path is not None else int(state.curve(self.encoder).size(q))
            state.record(Probe(q, measured, size))

    async def _finish(self) -> Candidate:
        """Build, verify and refine candidates; return the one the subnet would pay most for."""
        for state in self.scenes:
            if not state.probes:
                self._safe_probe(state)
        floor = self._search_target()
        candidates: list[Candidate] = []
        tried: set[tuple[float, ...]] = set()
        for attempt in range(self.options.refine_passes + 1):
            allocation = self._choose_allocation(floor)
            if allocation.qs in tried:
                break
            if candidates:
                best = self._best(candidates)
                if best.meets and self._predicted_score(allocation) <= best.score + MIN_SCORE_GAIN:
                    break
                if not self._can_afford(allocation):
                    self.notes.append("refinement skipped: not enough time left")
                    break
            tried.add(allocation.qs)
            try:
                if candidates:
                    output = await self._assemble(allocation, attempt)
                else:
                    allocation, output = await self._first_output(allocation, floor)
                candidate = await self._verify(output, allocation, attempt)
            except TimeoutError:
                if candidates:
                    self.notes.append("refinement stopped by the deadline")
                    break
                raise
            candidates.append(candidate)
            self._check_structure(candidate)
            self._learn_from(candidate)
            if candidate.scores.vmaf - candidate.scores.vmaf_neg > MAX_VMAF_DELTA:
                floor += 1.0
        return self._best(candidates)

    async def _first_output(self, allocation: Allocation, floor: float) -> tuple[Allocation, Path]:
        """The first candidate's file. Its encodes keep the verification's time back; when they run out
        of time, the best split among the encodes the probes already made is joined instead."""
        try:
            return allocation, await self._assemble(allocation, 0, reserve=self._verify_reserve())
        except TimeoutError:
            made = self._made_allocation(floor)
            self.notes.append("deadline: quality chosen among the probe encodes already made")
            return made, await self._assemble(made, 0)

    def _made_allocation(self, floor: float) -> Allocation:
        curves = [s.curve(self.encoder, self._reach()) for s in self.scenes]
        made = [np.array(sorted(s.files) or [p.q for p in s.probes]) for s in self.scenes]
        return self._pick(curves, floor, made)

    @staticmethod
    def _best(candidates: list[Candidate]) -> Candidate:
        return max(candidates, key=lambda c: (c.meets, c.score, c.scores.vmaf_neg))

    def _can_afford(self, allocation: Allocation) -> bool:
        frames = sum(s.scene.frames for s, q in zip(self.scenes, allocation.qs) if q not in s.files)
        encode = self.costs.encode_seconds(self._mpx(frames), self.scenes[0].preset) + CALL_OVERHEAD
        return encode * 1.3 + self._verify_reserve() < self.clock.remaining()

    def _outcome(self, best: Candidate) -> CompressOutcome:
        final = self.workdir / "output.mp4"
        shutil.move(best.path, final)
        ratio = self.source.size_bytes / best.media.size_bytes
        notes = list(dict.fromkeys(self.notes))
        if not best.meets:
            notes.append(f"threshold not met: VMAF-NEG {best.scores.vmaf_neg:.2f} < {self.aim:.2f} "
                         f"(T {self.job.threshold:g} + margin) or a gate failed "
                         f"({failures(best.gates) or 'none'}); best candidate returned")
        if best.score <= 0:
            notes.append("no candidate can earn a positive subnet score")
        return CompressOutcome(
            output=final, source=self.source, media=dataclasses.replace(best.media, path=final),
            vmaf=best.scores.vmaf, vmaf_neg=best.scores.vmaf_neg, ratio=ratio, predicted_score=best.score,
            meets_threshold=best.meets,
            encoder=self.encoder.name, preset=self.scenes[0].preset, scene_count=len(self.scenes),
            probes=self.probe_count, note="; ".join(notes), gates=best.gates, timings=self.timings)


async def _all_or_none(coros: list[Coroutine[object, object, None]]) -> None:
    """Run the coroutines concurrently; the first failure cancels the rest (and their ffmpeg children)."""
    tasks = [asyncio.ensure_future(coro) for coro in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def compress(source: Path, workdir: Path, job: CompressJob, options: CompressOptions | None = None, *,
                   budget_seconds: float, on_progress: ProgressCallback | None = None) -> CompressOutcome:
    """Compress `source` for `job` within `budget_seconds`; the result lands in `workdir/output.mp4`."""
    compressor = Compressor(source, workdir, job, options or CompressOptions(), budget_seconds=budget_seconds,
                            on_progress=on_progress)
    return await compressor.run()
