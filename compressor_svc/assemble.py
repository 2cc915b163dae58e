"""Encoding: one scene at one q (reusing an encode a probe already made), and a whole candidate joined from
its scenes by stream copy. The output is silent (validator inputs have no audio) and keeps the source's
colour tags, frame count and square pixels, as the validator's gates ask."""

from __future__ import annotations

import time
from pathlib import Path

from compressor_svc.context import JobContext, SceneState
from compressor_svc.scenes import Scene
from compressor_svc.search import Allocation
from mesh.ffmpeg import run_ffmpeg
from mesh.vmaf import frame_seek_args


def encode_args(ctx: JobContext, scene: Scene, q: float, preset: str, dest: Path,
                source_path: Path | None = None) -> list[str]:
    """ffmpeg arguments encoding `scene` of the source (or of `source_path`, a clip made from its frames) at
    `q` with `preset` into `dest`."""
    source = ctx.source
    colour = []
    for option, value in (("-color_primaries", source.color_primaries),
                          ("-color_trc", source.color_transfer),
                          ("-colorspace", source.color_space),
                          ("-color_range", source.color_range)):
        if value:
            colour += [option, value]
    return ["-y", "-loglevel", "error", *frame_seek_args(scene.start, source.fps),
            "-i", str(source_path or ctx.source_path), "-map", "0:v:0", "-an", "-sn", "-dn",
            "-frames:v", str(scene.frames),
            "-fps_mode", "passthrough", "-vf", "setsar=1", "-pix_fmt", "yuv420p", *colour,
            *ctx.encoder.args(q, preset, threads=ctx.threads_per_job, tuned=ctx.options.tuned),
            "-movflags", "+faststart", str(dest)]


async def encode_scene(ctx: JobContext, state: SceneState, q: float, reserve: float = 0.0) -> Path:
    """The scene at `q` with its preset, keeping `reserve` seconds; an encode made earlier is reused."""
    if q in state.files:
        return state.files[q]
    dest = ctx.workdir / f"scene{state.scene.index:03d}-{state.preset}-q{q:g}.mp4"
    async with ctx.slots:
        started = time.monotonic()
        await run_ffmpeg(encode_args(ctx, state.scene, q, state.preset, dest), timeout=ctx.timeout(reserve))
        ctx.costs.observe_encode(ctx.mpx(state.scene.frames), state.preset, time.monotonic() - started)
    state.files[q] = dest
    return dest


async def join(ctx: JobContext, parts: list[Path], dest: Path) -> Path:
    """The scene files as one MP4, by stream copy (no re-encode)."""
    if len(parts) == 1:
        await run_ffmpeg(["-y", "-loglevel", "error", "-i", str(parts[0]), "-map", "0:v:0", "-c", "copy",
                          "-movflags", "+faststart", str(dest)], timeout=ctx.timeout())
        return dest
    listing = dest.with_suffix(".txt")
    listing.write_text("".join(f"file '{part.resolve()}'\n" for part in parts), encoding="utf-8")
    await run_ffmpeg(["-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                      "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", str(dest)],
                     timeout=ctx.timeout())
    return dest


async def assemble(ctx: JobContext, allocation: Allocation, attempt: int, reserve: float = 0.0) -> Path:
    """Encode the scenes the probes did not already produce and join them; keeps `reserve` seconds."""
    parts = []
    for done, (state, q) in enumerate(zip(ctx.scenes, allocation.qs)):
        ctx.reporter.update("encode", done, len(ctx.scenes), "scenes",
                            f"scene {done + 1}/{len(ctx.scenes)}: {ctx.encoder.name} q {q:g}")
        parts.append(await encode_scene(ctx, state, q, reserve))
    return await join(ctx, parts, ctx.workdir / f"candidate-{attempt}.mp4")
