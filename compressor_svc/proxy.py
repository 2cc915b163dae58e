"""A real-size clip searched on a proxy: a few windows of its own frames, so the search costs a fraction of
one full encode.

At 4K on a miner (or 720p on 2 cores) one full encode plus one full VMAF pass already fill an item's share
of a synapse, so whole-scene probes cannot run. The proxy is `WINDOWS` runs of `WINDOW_FRAMES`
consecutive frames spread evenly over the clip (so every source of a permuted clip is sampled), cut
losslessly (FFV1 in NUT) into one short clip. A probe encodes the proxy at the final preset and measures its
VMAF-NEG against it, leaving out the first `SKIP_HEAD` frames of each window (libvmaf's motion feature
sees the joins as cuts). The proxy reads differently from the whole clip by a content-dependent amount:
`ProxyCorrection` (fitted from measured pairs in data/proxy_bias.json) shifts the reading and adds the
spread of what it could not explain to the margin.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from compressor_svc.assemble import encode_frames
from compressor_svc.context import JobContext
from compressor_svc.planning import net_of_overhead, proxy_costs
from compressor_svc.scenes import Scene
from compressor_svc.search import Probe, distortion, from_distortion, next_probe
from mesh.ffmpeg import run_ffmpeg
from mesh.vmaf import harmonic_mean, measure

# 10 windows of 24 frames, the first 6 of each left out: measured on three 720p permuted clips at one q
# each, this read within 0.2-0.4 of the full VMAF-NEG where 6 x 20 (skip 2) read 0.7-2.8 too high (fewer
# windows miss parts of a three-source clip, and short windows are mostly the encoder's key-frame start).
WINDOWS = 10
# The preset is planned so that PLANNED_PROBES fit; the search may go on to MAX_PROBES while time is left.
PLANNED_PROBES = 1
MAX_PROBES = 3
# One probe is the norm here, and the output is extrapolated from it: a first probe aimed 3 points over a
# target of 95.5 (T 93) landed at q 20 on grain, far from anything over the 1.25 ratio gate; aimed 1 point
# over, T-89 probes read under their targets by 4 points. A margin constant in distortion space answers both
# (docs/figures.md, "The real round").
FIRST_MARGIN_U = 0.27
WINDOW_FRAMES = 24
# A lean job (compressor_svc.compressor) samples one window per this many windows' worth of frames.
LEAN_CLIP_SHARE = 6
SKIP_HEAD = 6
# A frame of the proxy costs more to encode than a frame of the clip: its windows join at cuts, which the
# encoders answer with key frames (measured at 720p: SVT-AV1 preset 10 1.8x; x265 in chunks about 1x, so
# the final-encode estimate is the slower of this scaling and the cost model's).
PROXY_ENCODE_INFLATION = 1.8
BIAS_DATA = Path(__file__).with_name("data") / "proxy_bias.json"


@dataclass(frozen=True)
class ProxyCorrection:
    """full VMAF-NEG ≈ proxy VMAF-NEG + bias, with `spread` covering what a constant cannot (the 90th
    percentile of the residuals' magnitude)."""

    bias: float
    spread: float
    pairs: int

    @classmethod
    def fit(cls, pairs: list[tuple[float, float]]) -> ProxyCorrection:
        """From (proxy, full) readings of the same encodes."""
        differences = [full - proxy for proxy, full in pairs]
        bias = statistics.median(differences)
        residuals = sorted(abs(difference - bias) for difference in differences)
        spread = residuals[math.ceil(0.9 * len(residuals)) - 1]  # covers at least nine in ten
        return cls(round(bias, 3), round(spread, 3), len(pairs))


@cache
def correction() -> ProxyCorrection:
    data = json.loads(BIAS_DATA.read_text(encoding="utf-8"))
    return ProxyCorrection.fit([(pair["proxy"], pair["full"]) for pair in data["pairs"]])


@dataclass(frozen=True)
class Proxy:
    path: Path
    frames: int


def window_starts(total_frames: int, windows: int = WINDOWS) -> list[int]:
    """Where each window starts: evenly spread, the first at the clip's start, the last ending at its end."""
    length = min(WINDOW_FRAMES, total_frames)
    count = max(1, min(windows, total_frames // max(length, 1)))
    if count == 1:
        return [0]
    step = (total_frames - length) / (count - 1)
    return [round(index * step) for index in range(count)]


def proxy_frames(total_frames: int) -> int:
    return len(window_starts(total_frames)) * min(WINDOW_FRAMES, total_frames)


def lean_windows(total_frames: int) -> int:
    """A lean job's windows: about a sixth of the clip (two at least, `WINDOWS` at most), so that its probe
    costs a fraction of the one encode it pays for."""
    return max(2, min(WINDOWS, total_frames // (LEAN_CLIP_SHARE * WINDOW_FRAMES)))


def worth_it(total_frames: int) -> bool:
    """A proxy only pays when it is a small part of the clip (a 30-s clip: 240 of 900 frames)."""
    return total_frames >= 3 * WINDOWS * WINDOW_FRAMES


async def build_proxy(ctx: JobContext, windows: int = WINDOWS) -> Proxy:
    starts = window_starts(ctx.source.frame_count, windows)
    length = min(WINDOW_FRAMES, ctx.source.frame_count)
    selection = "+".join(f"between(n,{start},{start + length - 1})" for start in starts)
    path = ctx.workdir / "proxy.nut"  # exact timestamps (Matroska rounds to 1 ms; libvmaf pairs frames by time)
    await run_ffmpeg(["-y", "-loglevel", "error", "-i", str(ctx.source_path), "-map", "0:v:0", "-an",
                      "-vf", f"select='{selection}',setpts=N/FRAME_RATE/TB", "-fps_mode", "passthrough",
                      "-c:v", "ffv1", "-threads", str(ctx.threads_per_job), str(path)], timeout=ctx.timeout())
    return Proxy(path, len(starts) * length)


def _reading(scores, frames: int) -> float:
    """VMAF-NEG over the proxy's frames less each window's first SKIP_HEAD."""
    length = min(WINDOW_FRAMES, frames)
    values = [value for number, value in zip(scores.frame_numbers, scores.per_frame["vmaf_neg"])
              if number % length >= SKIP_HEAD]
    return harmonic_mean(values)


async def probe_proxy(ctx: JobContext, proxy: Proxy, q: float, preset: str) -> tuple[float, int, float]:
    """(raw VMAF-NEG reading, bytes, encode seconds) of the proxy encoded at `q`."""
    dest = ctx.workdir / f"proxy-{preset}-q{q:g}.mp4"
    started = time.monotonic()
    await encode_frames(ctx, Scene(-2, 0, proxy.frames), q, preset, dest, source_path=proxy.path)
    encode_seconds = time.monotonic() - started
    scores = await measure(dest, proxy.path, models=("vmaf_neg",), n_threads=ctx.threads_per_job,
                           timeout=ctx.timeout())
    size = dest.stat().st_size
    dest.unlink(missing_ok=True)
    return _reading(scores, proxy.frames), size, encode_seconds


def first_aim(target: float) -> float:
    """Where the first probe aims: FIRST_MARGIN_U over `target` in the search's distortion space, where the
    guess's error is about constant (3 VMAF-NEG points over a target of 88, 2 over 91.7, 1.2 over 95.5)."""
    return float(from_distortion(distortion(target) - FIRST_MARGIN_U))


async def search_on_proxy(ctx: JobContext, max_probes: int, windows: int = WINDOWS, *,
                          first_margin: float | None = None, settle_within: float = 0.0) -> int:
    """Probe the proxy until the corrected curve brackets the search target (or the time the final encode
    and verification need is reached), then give the clip's one scene those probes as whole-clip
    predictions, less the spread. A probe runs only while it fits before the final encode and a sampled
    verification, estimated from the cost model until a probe has timed this machine under its present
    load. The first probe aims at `first_aim` (or `first_margin` VMAF-NEG points over the target); once a probe
    reads within `settle_within` of the target the curve extrapolates the rest (a lean job's saving). Returns
    the probes made."""
    state = ctx.scenes[0]
    fix = correction()
    target = ctx.targets.search + fix.spread
    ctx.reporter.update("search", 0, max_probes, "probes", f"proxy of {windows} windows")
    proxy = await build_proxy(ctx, windows)
    scale = ctx.source.frame_count / proxy.frames
    # Until a probe has timed this machine, the cost model's figures.
    _, probe_seconds, final_seconds = proxy_costs(ctx, proxy.frames, state.preset)
    probes: list[Probe] = []
    first = ctx.encoder.guess(first_aim(target) if first_margin is None else target + first_margin)
    for made in range(max_probes):
        if probes and abs(probes[-1].vmaf_neg - target) <= settle_within:
            return made
        q = next_probe(probes, target, ctx.encoder, start=first)
        started = time.monotonic()
        if q is None or ctx.clock.remaining() - final_seconds < probe_seconds:
            if not made:
                ctx.notes.append("deadline: no time for a proxy probe, encoded at the encoder's typical quality")
            return made
        raw, size, encode_seconds = await probe_proxy(ctx, proxy, q, state.preset)
        probe_seconds = time.monotonic() - started  # the proxy was built before the clock started
        # A sampled verification still decodes every frame: about 0.4 of a full pass, by our measurements.
        ctx.verify_seconds = 1.1 * (0.4 * scale * net_of_overhead(probe_seconds - encode_seconds) + 1.0)
        # The slower of two estimates of the final encode: the probe's time scaled to the clip (which varies
        # with how each encoder meets the proxy's cuts) and the cost model's (an overrun loses the item).
        scaled = scale * net_of_overhead(encode_seconds) / PROXY_ENCODE_INFLATION
        modelled = ctx.costs.encode_seconds(ctx.mpx(ctx.source.frame_count), state.preset)
        final_seconds = 1.2 * (max(scaled, modelled) + 1.0) + ctx.verify_seconds
        probes.append(Probe(q, raw + fix.bias, int(size * scale)))
        state.record(Probe(q, raw + fix.bias - fix.spread, int(size * scale)))
        ctx.probe_count += 1
        ctx.reporter.update("search", made + 1, max_probes, "probes",
                            f"proxy probe {made + 1}: {ctx.encoder.name} q {q:g} vmaf-neg {raw + fix.bias:.2f} "
                            f"(raw {raw:.2f})")
    return max_probes
