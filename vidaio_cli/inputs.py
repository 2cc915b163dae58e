"""Validator-style inputs, built the way the subnet's video scheduler builds them (spec §3.1, §4.1).

HEAD reference trim: `libx264 -preset ultrafast -an -r 30 -pix_fmt yuv420p -g 30 -keyint_min 30
-sc_threshold 0`, dimensions multiples of 8 (the anti-fingerprint transform guarantees it). Era A kept the
source frame rate and GOP. The upscaling input is the reference rescaled with `scale=-1:<H/scale>` and
re-encoded libx264 ultrafast without audio. The compression input is the reference itself: at HEAD a
"permuted" clip of three chunks re-encoded libx264 fast CRF 18 (the validator's chunks come from three
different sources: `build_multi_source_reference`; the demo cuts all three from one), in Era A the plain trim.
Everything runs through mesh.ffmpeg (imageio-ffmpeg), never the PATH ffmpeg.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from mesh.codecs import TASK_SCALES
from mesh.ffmpeg import run_ffmpeg_sync
from mesh.media import probe

CLIP_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
ERAS = ("head", "old")
VALIDATOR_FPS = 30
MIN_REFERENCE_FRAMES = 10


def task_scale(task_type: str) -> int:
    """The subnet's rule: 4 for SD24K, 2 for every other task type."""
    if task_type not in TASK_SCALES:
        raise ValueError(f"unknown upscaling task type {task_type!r} (one of {', '.join(TASK_SCALES)})")
    return TASK_SCALES[task_type]


def default_source(clips_dir: Path) -> Path:
    """The highest-resolution clip in `clips_dir` (ties broken by name), so tiny demos still downscale."""
    clips = sorted(p for p in clips_dir.iterdir() if p.suffix.lower() in CLIP_SUFFIXES)
    if not clips:
        raise FileNotFoundError(f"no video clips in {clips_dir}")
    areas = {clip: probe(clip).width * probe(clip).height for clip in clips}
    return max(clips, key=areas.__getitem__)


def _reference_filter(height: int | None) -> str:
    """Optional resize to `height` (aspect kept), then crop both dimensions down to multiples of 8."""
    crop = "crop=trunc(iw/8)*8:trunc(ih/8)*8:(iw-trunc(iw/8)*8)/2:(ih-trunc(ih/8)*8)/2"
    return f"scale=-2:{height}:flags=bicubic,{crop}" if height else crop


def build_reference(source: Path, dest: Path, *, start: float, seconds: float, height: int | None = None,
                    era: str = "head") -> Path:
    """The validator's reference trim of `source` from `start` for `seconds` (silent, H.264 ultrafast)."""
    if era not in ERAS:
        raise ValueError(f"era must be one of {ERAS}, got {era!r}")
    args = ["-y", "-loglevel", "error", "-ss", f"{start:.3f}", "-i", str(source), "-t", f"{seconds:.3f}",
            "-vf", _reference_filter(height), "-an", "-c:v", "libx264", "-preset", "ultrafast"]
    if era == "head":
        # -frames:v makes the count exact for fractional lengths too (1-5 s and 10 s give the same as -t).
        args += ["-r", str(VALIDATOR_FPS), "-frames:v", str(max(1, round(seconds * VALIDATOR_FPS))),
                 "-pix_fmt", "yuv420p", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0"]
    run_ffmpeg_sync([*args, str(dest)], timeout=600)
    return dest


def _join_permuted(chunks: list[Path], dest: Path, rng: random.Random) -> Path:
    """Split each chunk at a random point (x in [1, 7] s of 10 s, i.e. 10-70 %), join A_head, B_tail,
    C_head, A_tail, B_head, C_tail and re-encode `libx264 -preset fast -crf 18`, 30 fps yuv420p, silent;
    the chunks are deleted afterwards."""
    frames = [probe(chunk).frame_count for chunk in chunks]
    if min(frames) < 2:
        raise ValueError(f"chunks of {frames} frames are too short to split (at least 2 frames each)")
    cuts = [min(n - 1, max(1, round(rng.uniform(0.1, 0.7) * n))) for n in frames]
    graph = [f"[{i}:v]split[h{i}][t{i}];[h{i}]trim=end_frame={cut},setpts=PTS-STARTPTS[head{i}];"
             f"[t{i}]trim=start_frame={cut},setpts=PTS-STARTPTS[tail{i}]" for i, cut in enumerate(cuts)]
    order = "[head0][tail1][head2][tail0][head1][tail2]"
    inputs = [arg for chunk in chunks for arg in ("-i", str(chunk))]
    run_ffmpeg_sync(["-y", "-loglevel", "error", *inputs, "-filter_complex",
                     ";".join(graph) + f";{order}concat=n=6:v=1:a=0[out]", "-map", "[out]", "-an",
                     "-c:v", "libx264", "-preset", "fast", "-crf", "18", "-pix_fmt", "yuv420p",
                     "-r", str(VALIDATOR_FPS), str(dest)], timeout=3600)
    for chunk in chunks:
        chunk.unlink()
    return dest


def build_permuted_reference(source: Path, dest: Path, *, starts: list[float], seconds: float,
                             height: int | None, rng: random.Random) -> Path:
    """HEAD's compression input (spec §4.1): three chunks A, B, C permuted by `_join_permuted`. The
    validator takes the chunks from three 4K sources; here they come from three random points of `source`
    (`starts`), `seconds / 3` each (`build_multi_source_reference` takes three sources)."""
    chunks = [build_reference(source, dest.with_name(f"{dest.stem}-chunk{i}.mp4"), start=start,
                              seconds=seconds / 3, height=height) for i, start in enumerate(starts)]
    return _join_permuted(chunks, dest, rng)


def frame_size(height: int) -> tuple[int, int]:
    """(width, height) of a 16:9 frame `height` tall, the width rounded to a multiple of 8."""
    if height < 16 or height % 8:
        raise ValueError(f"height {height} must be a multiple of 8, at least 16")
    return round(height * 16 / 9 / 8) * 8, height


def build_multi_source_reference(sources: list[Path], dest: Path, *, seconds: float, height: int,
                                 rng: random.Random) -> Path:
    """HEAD's compression input as the validator makes it (spec §4.1): one `seconds / 3` chunk from each of
    three different sources (a random start; a source shorter than the chunk is looped), each scaled and
    cropped to the same 16:9 `frame_size(height)`, 30 fps, then permuted by `_join_permuted`."""
    if len(sources) != 3 or len(set(sources)) != 3:
        raise ValueError(f"three different sources, please (got {[s.name for s in sources]})")
    width, height = frame_size(height)
    chunk_seconds = seconds / 3
    frames = max(1, round(chunk_seconds * VALIDATOR_FPS))
    shape = (f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic,"
             f"crop={width}:{height},setsar=1")
    chunks = []
    for index, source in enumerate(sources):
        duration = probe(source).duration
        loop = duration < chunk_seconds + 0.1
        start = 0.0 if loop else round(rng.uniform(0, duration - chunk_seconds - 0.1), 3)
        chunk = dest.with_name(f"{dest.stem}-chunk{index}.mp4")
        run_ffmpeg_sync(["-y", "-loglevel", "error", *(["-stream_loop", "-1"] if loop else []),
                         "-ss", f"{start:.3f}", "-i", str(source), "-vf", shape, "-an", "-r", str(VALIDATOR_FPS),
                         "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                         "yuv420p", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", str(chunk)],
                        timeout=3600)
        chunks.append(chunk)
    return _join_permuted(chunks, dest, rng)


def build_upscaling_input(reference: Path, dest: Path, *, scale: int) -> Path:
    """The miner's input: the reference downscaled by `scale` with `scale=-1:<H/scale>`, libx264 ultrafast."""
    height = probe(reference).height
    if height % scale:
        raise ValueError(f"reference height {height} is not divisible by the task scale {scale}")
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-i", str(reference), "-vf", f"scale=-1:{height // scale}",
                     "-c:v", "libx264", "-preset", "ultrafast", "-an", str(dest)], timeout=600)
    return dest


@dataclass(frozen=True)
class UpscalingInput:
    task_type: str
    scale: int
    reference: Path
    payload: Path


@dataclass(frozen=True)
class CompressionInput:
    vmaf_threshold: float
    target_codec: str
    codec_mode: str
    target_bitrate: float
    reference: Path

    @property
    def payload(self) -> Path:
        """The miner receives exactly the reference file (spec §4.1)."""
        return self.reference


def _starts(source: Path, count: int, seconds: float, rng: random.Random) -> list[float]:
    """Random trim start points inside `source` (the scheduler cuts overlapping chunks at random)."""
    duration = probe(source).duration
    if duration < seconds:
        raise ValueError(f"{source.name} lasts {duration:.2f} s, shorter than the {seconds} s trim")
    return [round(rng.uniform(0, duration - seconds), 3) for _ in range(count)]


def build_upscaling_inputs(source: Path, workdir: Path, task_types: list[str], *, seconds: float,
                           reference_height: int | None, era: str, rng: random.Random) -> list[UpscalingInput]:
    """One reference + downscaled payload per task type, each trimmed from a random point of `source`."""
    workdir.mkdir(parents=True, exist_ok=True)
    items = []
    for index, (task_type, start) in enumerate(zip(task_types, _starts(source, len(task_types), seconds, rng))):
        scale = task_scale(task_type)
        reference = build_reference(source, workdir / f"upscale-{index}-reference.mp4", start=start,
                                    seconds=seconds, height=reference_height, era=era)
        payload = build_upscaling_input(reference, workdir / f"upscale-{index}-input.mp4", scale=scale)
        items.append(UpscalingInput(task_type, scale, reference, payload))
    return items


def build_compression_inputs(source: Path, workdir: Path, settings: list[tuple[float, str, str, float]], *,
                             seconds: float, reference_height: int | None, era: str,
                             rng: random.Random) -> list[CompressionInput]:
    """One reference per (threshold, codec, mode, bitrate Mbps) tuple; the reference is the payload:
    HEAD's permuted three-chunk clip, or Era A's plain trim."""
    workdir.mkdir(parents=True, exist_ok=True)
    items = []
    for index, (threshold, codec, mode, bitrate) in enumerate(settings):
        reference = workdir / f"compress-{index}-reference.mp4"
        if era == "head":
            build_permuted_reference(source, reference, starts=_starts(source, 3, seconds / 3, rng),
                                     seconds=seconds, height=reference_height, rng=rng)
        else:
            build_reference(source, reference, start=_starts(source, 1, seconds, rng)[0], seconds=seconds,
                            height=reference_height, era=era)
        items.append(CompressionInput(threshold, codec, mode, bitrate, reference))
    return items
