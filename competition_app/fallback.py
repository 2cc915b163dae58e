"""The fast way: one encode of the whole clip at the encoder's fastest preset and a conservative quality
(its typical q for the threshold plus a margin), not measured. Under a VBR cap the encoder's own rate cap
is set below it too. It is the last resort when the core has no verified output in time, and the only way
for an input so long that even this one encode takes a large share of the time (timed on its first
seconds). An unmeasured output may land in the soft zone, but it still counts for coverage and earns some
score; a null earns nothing."""

from __future__ import annotations

import time
from pathlib import Path

from competition_app.contract import Item
from mesh.codecs import select_encoder
from mesh.ffmpeg import run_ffmpeg
from mesh.media import MediaFacts

SAFE_MARGIN_VMAF = 3.0
# The encoder's rate cap, as a share of the scorer's (encoders overshoot a little on short clips).
CAP_SHARE = 0.8
# How much of the clip the speed test encodes, and ffmpeg's start-up, which does not grow with the clip.
SAMPLE_SECONDS = 3.0
CALL_OVERHEAD = 0.3


def encode_args(facts: MediaFacts, item: Item, dest: Path, *, threads: int, allow_hardware: bool,
                frames: int | None = None) -> list[str]:
    """The whole clip (or its first `frames` frames) the fast way."""
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
    return ["-y", "-loglevel", "error", "-i", str(facts.path), "-map", "0:v:0", "-an", "-sn", "-dn", *limit,
            "-fps_mode", "passthrough", "-vf", "setsar=1", "-pix_fmt", "yuv420p", *colour, *codec,
            "-movflags", "+faststart", str(dest)]


async def encode(facts: MediaFacts, item: Item, dest: Path, *, threads: int, allow_hardware: bool,
                 timeout: float) -> Path:
    await run_ffmpeg(encode_args(facts, item, dest, threads=threads, allow_hardware=allow_hardware),
                     timeout=timeout)
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
