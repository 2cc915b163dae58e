"""Encoding: one scene at one q (reusing an encode a probe already made), and a whole candidate joined from
its scenes by stream copy. The output is silent (validator inputs have no audio) and keeps the source's
colour tags, frame count and square pixels, as the validator's gates ask."""

from __future__ import annotations

import time
from pathlib import Path

from compressor_svc.context import JobContext, SceneState
from compressor_svc.scenes import Scene
from compressor_svc.search import Allocation
from mesh.ffmpeg import encode_side_by_side, join_video, run_ffmpeg
from mesh.vmaf import frame_seek_args

# Chunks shorter than this cost a key frame each for too little parallel work.
MIN_CHUNK_FRAMES = 120
MAX_CHUNKS = 8


def encode_args(ctx: JobContext, scene: Scene, q: float, preset: str, dest: Path,
                source_path: Path | None = None, threads: int | None = None) -> list[str]:
    """ffmpeg arguments encoding `scene` of the source (or of `source_path`, a clip made from its frames) at
    `q` with `preset` into `dest`, with the job's threads unless `threads` says otherwise."""
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
            *ctx.encoder.args(q, preset, threads=threads or ctx.threads_per_job, tuned=ctx.options.tuned),
            "-movflags", "+faststart", str(dest)]


async def encode_scene(ctx: JobContext, state: SceneState, q: float, reserve: float = 0.0) -> Path:
    """The scene at `q` with its preset, keeping `reserve` seconds; an encode made earlier is reused."""
    if q in state.files:
        return state.files[q]
    dest = ctx.workdir / f"scene{state.scene.index:03d}-{state.preset}-q{q:g}.mp4"
    async with ctx.slots:
        started = time.monotonic()
        await encode_frames(ctx, state.scene, q, state.preset, dest, reserve=reserve)
        ctx.costs.observe_encode(ctx.mpx(state.scene.frames), state.preset, time.monotonic() - started)
    state.files[q] = dest
    return dest


def chunk_scenes(ctx: JobContext, scene: Scene) -> list[Scene]:
    """`scene` cut into equal chunks to encode side by side, when its encoder leaves cores idle; else
    [scene]."""
    per_chunk = ctx.encoder.chunk_threads
    if not per_chunk:
        return [scene]
    count = min(MAX_CHUNKS, ctx.threads_per_job // per_chunk, scene.frames // MIN_CHUNK_FRAMES)
    if count <= 1:
        return [scene]
    bounds = [scene.start + round(index * scene.frames / count) for index in range(count + 1)]
    return [Scene(scene.index, start, end) for start, end in zip(bounds, bounds[1:])]


async def encode_frames(ctx: JobContext, scene: Scene, q: float, preset: str, dest: Path, *,
                        source_path: Path | None = None, reserve: float = 0.0) -> None:
    """`scene` of the source (or of `source_path`) at `q` into `dest`: one ffmpeg run, or chunks side by
    side joined by stream copy when the encoder leaves cores idle (`chunk_scenes`)."""
    chunks = chunk_scenes(ctx, scene)
    if len(chunks) == 1:
        await run_ffmpeg(encode_args(ctx, scene, q, preset, dest, source_path), timeout=ctx.timeout(reserve))
        return
    threads = max(1, ctx.threads_per_job // len(chunks))
    paths = [dest.with_name(f"{dest.stem}-chunk{index}.mp4") for index in range(len(chunks))]
    await encode_side_by_side([encode_args(ctx, chunk, q, preset, path, source_path, threads)
                               for chunk, path in zip(chunks, paths)], paths, dest,
                              deadline=time.monotonic() + ctx.timeout(reserve))


async def assemble(ctx: JobContext, allocation: Allocation, attempt: int, reserve: float = 0.0) -> Path:
    """Encode the scenes the probes did not already produce and join them; keeps `reserve` seconds."""
    parts = []
    for done, (state, q) in enumerate(zip(ctx.scenes, allocation.qs)):
        ctx.reporter.update("encode", done, len(ctx.scenes), "scenes",
                            f"scene {done + 1}/{len(ctx.scenes)}: {ctx.encoder.name} q {q:g}")
        parts.append(await encode_scene(ctx, state, q, reserve))
    return await join_video(parts, ctx.workdir / f"candidate-{attempt}.mp4", timeout=ctx.timeout())
