"""VMAF the way the subnet validator measures it, on imageio-ffmpeg's libvmaf (the one VMAF helper).

Both built-in models (`vmaf_v0.6.1` and `vmaf_v0.6.1neg`) run in ONE libvmaf pass: each input is decoded
once (NEG still extracts its own features, so libvmaf's own time is about that of two passes); per-frame
values come back and the score is the harmonic mean over frames whose VMAF is > 0, as
the validator computes it (spec §4.4). Options: `n_subsample` (every n-th frame; the validator uses 1
for compression and 20-30 for upscaling; note it skews VMAF-NEG upward, by 1.5-2 points at 2 on our
clips, so compression probes do not use it), a reference window (compare an encoded scene with frames
[start, start + count) of the source, seeking frame-exactly) and scaling the distorted video to the
reference size (the upscaling gate).

Why not `ffmpeg-quality-metrics`: it loads one model per pass from a JSON path (two passes for VMAF and
VMAF-NEG), always probes both inputs with extra ffmpeg runs, has no reference window other than "first N
frames", runs ffmpeg with a blocking `subprocess` that a cancelled job cannot kill, and pools with the
arithmetic mean. Building the libvmaf filter here is a few lines and runs through `mesh.ffmpeg`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mesh.ffmpeg import run_ffmpeg

MODELS = {"vmaf": "vmaf_v0.6.1", "vmaf_neg": "vmaf_v0.6.1neg"}
_SAFE_PATH = re.compile(r"^[\w./-]+$")


def harmonic_mean(values: Iterable[float]) -> float:
    """Harmonic mean over the values > 0 (the validator drops frames scoring 0); 0.0 when none are."""
    positive = [value for value in values if value > 0]
    if not positive:
        return 0.0
    return len(positive) / sum(1.0 / value for value in positive)


def frame_seek_args(first_frame: int, fps: Fraction | float) -> list[str]:
    """Input options that start decoding exactly at `first_frame` of a constant-frame-rate file.

    ffmpeg's accurate input seek drops frames stamped before the position; half a frame early keeps
    `first_frame` and drops the one before it.
    """
    if first_frame <= 0:
        return []
    return ["-ss", f"{(first_frame - 0.5) / float(fps):.6f}"]


@dataclass(frozen=True)
class VmafScores:
    """Harmonic means per model and the per-frame values they came from (frame numbers are relative to
    the compared window)."""

    frame_numbers: tuple[int, ...]
    per_frame: dict[str, tuple[float, ...]]

    def score(self, model: str = "vmaf_neg", start: int = 0, stop: int | None = None) -> float:
        """Harmonic mean of `model` over the measured frames in [start, stop)."""
        values = self.per_frame[model]
        return harmonic_mean(value for number, value in zip(self.frame_numbers, values)
                             if number >= start and (stop is None or number < stop))

    @property
    def vmaf(self) -> float:
        return self.score("vmaf")

    @property
    def vmaf_neg(self) -> float:
        return self.score("vmaf_neg")


def _work_dir() -> str:
    base = tempfile.gettempdir()
    return base if _SAFE_PATH.match(base) else "/tmp"


def _filter_graph(models: Sequence[str], log_path: str, *, n_subsample: int, n_threads: int,
                  frame_count: int | None, scale_to_reference: bool) -> str:
    trim = f"trim=end_frame={frame_count}," if frame_count else ""
    model_option = "|".join(f"version={MODELS[key]}\\:name={key}" for key in models)
    vmaf = (f"libvmaf=model='{model_option}':log_fmt=json:log_path={log_path}"
            f":n_subsample={n_subsample}:n_threads={n_threads}")
    chains = [f"[0:v]{trim}setpts=PTS-STARTPTS,format=yuv420p[dist]",
              f"[1:v]{trim}setpts=PTS-STARTPTS,format=yuv420p[ref]"]
    if scale_to_reference:
        chains += ["[ref]split=2[refvmaf][refsize]", "[dist][refsize]scale=rw:rh:flags=bicubic[distvmaf]"]
    else:
        chains += ["[dist]null[distvmaf]", "[ref]null[refvmaf]"]
    return ";".join([*chains, f"[distvmaf][refvmaf]{vmaf}"])


async def measure(distorted: Path | str, reference: Path | str, *,
                  models: Sequence[str] = ("vmaf", "vmaf_neg"), n_subsample: int = 1,
                  n_threads: int | None = None, reference_start: int = 0,
                  frame_count: int | None = None, reference_fps: Fraction | float | None = None,
                  scale_to_reference: bool = False, timeout: float | None = None) -> VmafScores:
    """VMAF of `distorted` against `reference` (or against frames [reference_start, reference_start +
    frame_count) of it, which needs `reference_fps`). Cancellation kills ffmpeg."""
    unknown = [key for key in models if key not in MODELS]
    if unknown or not models:
        raise ValueError(f"models must be a non-empty subset of {sorted(MODELS)}, got {list(models)}")
    if n_subsample < 1:
        raise ValueError("n_subsample must be at least 1")
    if reference_start and reference_fps is None:
        raise ValueError("a reference window needs the reference frame rate")
    threads = n_threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="vmaf-", dir=_work_dir()) as work:
        log_path = os.path.join(work, "vmaf.json")
        graph = _filter_graph(models, log_path, n_subsample=n_subsample, n_threads=threads,
                              frame_count=frame_count, scale_to_reference=scale_to_reference)
        seek = frame_seek_args(reference_start, reference_fps) if reference_start else []
        await run_ffmpeg(["-loglevel", "error", "-i", str(distorted), *seek, "-i", str(reference),
                          "-filter_complex", graph, "-an", "-f", "null", "-"], timeout=timeout)
        with open(log_path, encoding="utf-8") as log:
            frames = json.load(log)["frames"]
    per_frame = {key: tuple(float(frame["metrics"][key]) for frame in frames) for key in models}
    return VmafScores(frame_numbers=tuple(int(frame["frameNum"]) for frame in frames), per_frame=per_frame)
