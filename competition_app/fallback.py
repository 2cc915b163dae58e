"""The fast way: one encode of the whole clip (a long one in chunks side by side) at the encoder's fastest
preset and a conservative quality (its typical q for the threshold plus a margin), not measured. Under a VBR
cap the encoder's own rate cap is set below it too. It is the last resort when the core has no verified
output in time, and the only way for an input so long that even this encode takes a large share of the time
(timed on its first seconds). An unmeasured output may land in the soft zone, but it still counts for
coverage and earns some score; a null earns nothing."""

from __future__ import annotations

import time
from pathlib import Path

from competition_app.contract import Item
from mesh.codecs import select_encoder
from mesh.ffmpeg import encode_side_by_side, run_ffmpeg
from mesh.media import MediaFacts
from mesh.vmaf import frame_seek_args

SAFE_MARGIN_VMAF = 3.0
# The encoder's rate cap, as a share of the scorer's (encoders overshoot a little on short clips).
CAP_SHARE = 0.8
# How much of the clip the speed test encodes, and ffmpeg's start-up, which does not grow with the clip.
SAMPLE_SECONDS = 3.0
CALL_OVERHEAD = 0.3
# An input this long (and of constant frame rate) is cut into chunks of at least half of it, encoded side by
# side with a share of the threads each and joined by stream copy, as the reference does from 1200 s: one
# SVT-AV1 encode leaves cores idle (a 60-s 480p clip on 2 cores: 5.1 s whole, 4.5 s as two halves side by
# side), and NVENC runs sessions in parallel (two at a time, as the reference).
CHUNK_MIN_SECONDS = 60.0
MAX_CHUNKS = 8
MAX_NVENC_CHUNKS = 2


def chunks(facts: MediaFacts, threads: int, hardware: bool) -> list[tuple[int, int]]:
    """(first frame, frame count) of each part the fast way encodes side by side: one part unless the input
    is long and of constant frame rate (the cuts are placed by frame time)."""
    frames = facts.frame_count
    constant_rate = facts.fps > 0 and abs(frames - facts.duration * float(facts.fps)) <= max(2, 0.01 * frames)
    if facts.duration < CHUNK_MIN_SECONDS or not constant_rate:
        return [(0, frames)]
    limit = MAX_NVENC_CHUNKS if hardware else min(MAX_CHUNKS, threads)
    count = max(1, min(limit, int(facts.duration // (CHUNK_MIN_SECONDS / 2))))
    bounds = [round(index * frames / count) for index in range(count + 1)]
    return [(first, end - first) for first, end in zip(bounds, bounds[1:])]


def encode_args(facts: MediaFacts, item: Item, dest: Path, *, threads: int, allow_hardware: bool,
                frames: int | None = None, start: int = 0) -> list[str]:
    """The clip (or `frames` frames of it from frame `start`) the fast way."""
    encoder = select_encoder("av1", allow_hardware=allow_hardware)
    q = encoder.guess(item.vmaf_threshold + SAFE_MARGIN_VMAF)
    cap = int(item.target_bitrate * 1.10 * CAP_SHARE) // 1000 if item.codec_mode == "VBR" and item.target_bitrate \
        else None
    codec = encoder.args(q, encoder.presets[-1], threads=threads, max_kbps=cap)
    colour = []
    for option, value in (("-color_primaries", facts.color_primaries), ("-color_trc", facts.color_transfer),
                          ("-colorspace", facts.color_space), ("-color_range", facts.color_range)):
        if value:
            colour += [option, value]
    limit = ["-frames:v", str(frames)] if frames else []
    return ["-y", "-loglevel", "error", *frame_seek_args(start, facts.fps), "-i", str(facts.path), "-map", "0:v:0",
            "-an", "-sn", "-dn", *limit,
            "-fps_mode", "passthrough", "-vf", "setsar=1", "-pix_fmt", "yuv420p", *colour, *codec,
            "-movflags", "+faststart", str(dest)]


async def encode(facts: MediaFacts, item: Item, dest: Path, *, threads: int, allow_hardware: bool,
                 timeout: float) -> Path:
    """The whole clip the fast way into `dest`: one encode, or chunks side by side (`chunks`)."""
    parts = chunks(facts, threads, select_encoder("av1", allow_hardware=allow_hardware).hardware)
    if len(parts) == 1:
        await run_ffmpeg(encode_args(facts, item, dest, threads=threads, allow_hardware=allow_hardware),
                         timeout=timeout)
        return dest
    share = max(1, threads // len(parts))
    paths = [dest.with_name(f"{dest.stem}-part{index}.mp4") for index in range(len(parts))]
    await encode_side_by_side([encode_args(facts, item, path, threads=share, allow_hardware=allow_hardware,
                                           frames=count, start=first)
                               for (first, count), path in zip(parts, paths)], paths, dest,
                              deadline=time.monotonic() + timeout)
    return dest


async def seconds_needed(facts: MediaFacts, item: Item, work: Path, *, threads: int, allow_hardware: bool,
                         timeout: float) -> float:
    """What encoding the whole clip the fast way should take here, from timing its first SAMPLE_SECONDS."""
    frames = min(facts.frame_count, max(1, round(SAMPLE_SECONDS * float(facts.fps))))
    dest = work / "speed-test.mp4"
    started = time.monotonic()
    await run_ffmpeg(encode_args(facts, item, dest, threads=threads, allow_hardware=allow_hardware, frames=frames),
                     timeout=timeout)
    took = max(time.monotonic() - started - CALL_OVERHEAD, 0.2 * (time.monotonic() - started))
    dest.unlink(missing_ok=True)
    return CALL_OVERHEAD + took * facts.frame_count / frames
