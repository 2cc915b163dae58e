"""One item, start to finish: probe the source, let our compressor core make the smallest AV1 video that
meets the item's VMAF-NEG threshold (under the VBR cap when there is one), copy the source's audio packets
into it untouched and give it the source's sample aspect ratio (one stream-copy mux), check it the way the
validator's scorer will (§5.1), and move it into place. All work files live in a scratch directory that
is removed afterwards; only the finished file ever appears under the output root.

This module imports the core (av, numpy, scenedetect), so the app loads it in the background at start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from competition_app import fallback
from competition_app.contract import Item
from competition_app.settings import CompetitionSettings
from compressor_svc.compressor import compress
from compressor_svc.job import CompressJob, CompressOptions
from mesh.codecs import NVENC_ENCODERS
from mesh.errors import DeadlineTooShort
from mesh.ffmpeg import nvenc_available, run_ffmpeg
from mesh.media import MediaFacts, probe

log = logging.getLogger(__name__)

# The scorer's limits (subnet competition/scoring.py).
BITRATE_CAP_FACTOR = 1.10
MIN_RATIO = 1.25
# After the core: the mux reads the source once (when it has audio), the audio check and the move read the
# (much smaller) output.
FINISH_SECONDS = 8.0
FINISH_BYTES_PER_SECOND = 300e6
# The audio fingerprint reads the whole file; the batch's hard stop (routes) bounds it in practice.
AUDIO_HASH_TIMEOUT = 1800.0
# A VBR retry aims this far under the cap, scaled by how far the first output overshot it.
RETRY_HEADROOM = 0.95


class OutputRejected(RuntimeError):
    """The finished file would fail the validator's checks; it is not delivered."""


@dataclass(frozen=True)
class Plan:
    """An accepted item: where it reads and writes, and what the probe found in its source."""

    item: Item
    source: Path
    output: Path
    facts: MediaFacts


def warm_up(allow_hardware: bool) -> None:
    """Called once in the background at start: whether NVENC opens here is an ffmpeg run worth doing early."""
    if allow_hardware:
        nvenc_available(NVENC_ENCODERS["av1"].name)


def probe_source(source: Path) -> MediaFacts:
    """The source's facts (here so the routes need not import the media stack before it has loaded)."""
    return probe(source)


async def run(plan: Plan, *, deadline: float, threads: int, settings: CompetitionSettings) -> Path:
    """Make `plan.output` by `deadline` (time.monotonic()); raise on any failure (the item is then null)."""
    work = Path(tempfile.mkdtemp(prefix="item-", dir=settings.scratch_dir))
    # The source's audio fingerprint is read while the video encodes (it reads the file, decodes nothing).
    source_audio = asyncio.create_task(audio_fingerprint(plan.source, work)) if plan.facts.has_audio else None
    try:
        reads = 1 if plan.facts.has_audio else 0
        finish = deadline - FINISH_SECONDS - reads * plan.facts.size_bytes / FINISH_BYTES_PER_SECOND
        video = await _video(plan, work, finish, threads, settings)
        final = work / "final.mp4"
        await mux(video, plan.facts, final, timeout=max(5.0, deadline - time.monotonic()))
        await check(final, plan, await source_audio if source_audio else None)
        await asyncio.to_thread(publish, final, plan.output)
        return plan.output
    finally:
        if source_audio:
            source_audio.cancel()
            await asyncio.gather(source_audio, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, work, True)


async def _video(plan: Plan, work: Path, until: float, threads: int, settings: CompetitionSettings) -> Path:
    """The encoded video (silent, square pixels) by `until`: the core's verified search with all but
    `fallback_share` of the time, the fast way when it has none by then; only the fast way for an input so
    long that it alone needs more than `direct_share` of the time."""
    fast = dict(threads=threads, allow_hardware=settings.allow_hardware)
    if plan.facts.duration >= settings.direct_min_seconds:
        needed = await fallback.seconds_needed(plan.facts, plan.item, work, timeout=until - time.monotonic(), **fast)
        if needed > settings.direct_share * (until - time.monotonic()):
            log.warning("%s: the fast encode alone needs ~%.0f s: no search", plan.output.name, needed)
            return await fallback.encode(plan.facts, plan.item, work / "fast.mp4", timeout=until - time.monotonic(),
                                         **fast)
    job = CompressJob(plan.item.vmaf_threshold, "av1", plan.item.codec_mode, plan.item.bitrate_mbps)
    options = CompressOptions(threads=threads, allow_hardware=settings.allow_hardware, lean=settings.policy == "lean")
    core_until = until - settings.fallback_share * (until - time.monotonic())
    try:
        outcome = await _encode(plan, job, options, work / "core", core_until)
        cap = _cap(plan.item)
        if cap and outcome.media.bit_rate > cap:
            # The core sizes its split by prediction; when the file overshoots, search again under a lower cap
            # scaled by the overshoot (in the time left: the core plans for it).
            job = CompressJob(job.threshold, "av1", "VBR",
                              job.bitrate_mbps * RETRY_HEADROOM * cap / outcome.media.bit_rate)
            outcome = await _encode(plan, job, options, work / "retry", core_until)
        return outcome.output
    except DeadlineTooShort:
        log.warning("%s: no verified output in time, the fast encode runs", plan.output.name)
        return await fallback.encode(plan.facts, plan.item, work / "fast.mp4", timeout=until - time.monotonic(),
                                     **fast)


async def _encode(plan: Plan, job: CompressJob, options: CompressOptions, work: Path, until: float):
    outcome = await compress(plan.source, work, job, options, budget_seconds=until - time.monotonic(),
                             facts=plan.facts)
    log.info("%s: %s VMAF-NEG %.2f ratio %.2f %d b/s (%s)", plan.output.name, outcome.encoder, outcome.vmaf_neg,
             outcome.ratio, outcome.media.bit_rate, outcome.note or "as planned")
    return outcome


def _cap(item: Item) -> int | None:
    """The scorer's bitrate cap in bits per second (int, as it compares), None in CRF mode."""
    if item.codec_mode == "VBR" and item.target_bitrate:
        return int(item.target_bitrate * BITRATE_CAP_FACTOR)
    return None


def aspect_args(facts: MediaFacts) -> list[str]:
    """`-aspect` (display aspect) that gives a stream-copied video the source's SAR; none when the source
    has none (the core's output is then 1:1)."""
    if not facts.sample_aspect_ratio:
        return []
    num, den = (int(part) for part in facts.sample_aspect_ratio.split(":"))
    if num <= 0 or den <= 0:
        return []
    display = Fraction(facts.width * num, facts.height * den)
    return ["-aspect", f"{display.numerator}:{display.denominator}"]


async def mux(video: Path, facts: MediaFacts, dest: Path, *, timeout: float) -> None:
    """The encoded video and every audio stream of the source, both stream-copied (audio packets stay
    byte-identical, as the scorer's packet hash demands), with the source's SAR."""
    inputs, maps = ["-i", str(video)], ["-map", "0:v:0"]
    if facts.has_audio:
        inputs, maps = [*inputs, "-i", str(facts.path)], [*maps, "-map", "1:a"]
    await run_ffmpeg(["-y", "-loglevel", "error", *inputs, *maps, "-c", "copy", *aspect_args(facts),
                      "-movflags", "+faststart", str(dest)], timeout=timeout)


async def audio_fingerprint(path: Path, scratch: Path) -> str:
    """The scorer's audio check: sha256 over the audio packets, nothing decoded (written to `scratch`)."""
    listing = scratch / f"audio-{uuid.uuid4().hex}.sha256"
    await run_ffmpeg(["-y", "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy", "-f", "hash",
                      "-hash", "sha256", str(listing)], timeout=AUDIO_HASH_TIMEOUT)
    return listing.read_text(encoding="utf-8").strip()


async def check(output: Path, plan: Plan, source_audio: str | None) -> None:
    """The scorer's validity checks that need no VMAF, in its order; OutputRejected on the first failure.
    `source_audio` is the source's audio fingerprint (None when it has no audio)."""
    source, item = plan.facts, plan.item
    facts = await asyncio.to_thread(probe, output)
    if facts.has_audio != source.has_audio:
        raise OutputRejected("audio streams differ from the source's")
    if source_audio is not None and await audio_fingerprint(output, output.parent) != source_audio:
        raise OutputRejected("audio packets differ from the source's")
    cap = _cap(item)
    if cap and not 0 < facts.bit_rate <= cap:
        raise OutputRejected(f"video bitrate {facts.bit_rate} over the cap {cap}")
    problems = [
        (facts.size_bytes >= source.size_bytes, "not smaller than the source"),
        (facts.codec != "av1", f"codec {facts.codec}"),
        ("mp4" not in facts.container, f"container {facts.container}"),
        ((facts.width, facts.height) != (source.width, source.height), "dimensions changed"),
        (abs(facts.duration - source.duration) > max(0.5, 0.01 * source.duration), "duration changed"),
        (not facts.pix_fmt.startswith("yuv"), f"pix_fmt {facts.pix_fmt}"),
        (facts.sample_aspect_ratio != (source.sample_aspect_ratio or "1:1"), "sample aspect ratio changed"),
        (abs(facts.frame_count - source.frame_count) > max(1, round(0.01 * source.frame_count)),
         "frame count changed"),
        (source.size_bytes / max(facts.size_bytes, 1) < MIN_RATIO, "compression ratio under 1.25"),
    ]
    failed = [reason for bad, reason in problems if bad]
    if failed:
        raise OutputRejected(failed[0])


def publish(file: Path, output: Path) -> None:
    """Move the finished file to `output` without ever overwriting: a rename when both are on one
    filesystem, else a copy to a hidden name beside it and a rename (the output root may be a volume)."""
    if os.path.lexists(output):
        raise FileExistsError(f"{output} appeared while the item ran")
    try:
        os.rename(file, output)
        return
    except OSError:
        pass
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex}.partial")
    try:
        shutil.copyfile(file, partial)
        if os.path.lexists(output):
            raise FileExistsError(f"{output} appeared while the item ran")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
