"""Benchmark the compressor against two baselines on validator-style inputs, scored like the subnet.

Inputs are built as the HEAD validator builds compression inputs (spec §4.1): three chunks of different
development clips, each split at a random point, concatenated A_head B_tail C_head A_tail B_head C_tail,
30 fps yuv420p, re-encoded libx264 -preset fast -crf 18, silent. They are downscaled (default 384x216, 12 s)
so a CPU run finishes in minutes; 4K inputs would need a GPU (NVENC) to fit the validator's time.

Methods, run one after another on every (clip, threshold, codec) item with the same time budget:
  (a) reference  the HEAD base miner's policy (spec §4.3): one encode at a fixed quality chosen by the
                 threshold (T >= 93 -> 30, T >= 89 -> 35, else 40). The base miner's av1_nvenc / hevc_nvenc
                 `-cq` maps to our CPU encoders as libsvtav1 `crf` (the same 0-63 AV1 quantiser scale) and
                 libx265 `crf` (the same 0-51 HEVC scale), at the encoders' default presets (svt 8, x265
                 medium; NVENC p4 is its medium preset). Same quantiser scale, not the same encoder: the
                 VMAF a given cq reaches differs between NVENC and the CPU encoders, so (a) reproduces the
                 base miner's policy, not its exact files.
  (b) search     one whole-clip quality search, ab-av1 style: bisection + interpolation on the encoder's
                 quality knob toward VMAF-NEG >= T + margin, default encoder settings and preset, then the
                 same full verification and repair as ours (so it also meets T).
  (c) ours       the compressor service's core with default options: scenes, per-scene search, the split
                 chosen by the subnet's score, a preset planned from the time budget.
  (c@b)          (--ablation) ours forced to (b)'s preset: what the search alone buys.

Score: the subnet's HEAD compression score on our full-frame VMAF-NEG (harmonic mean, every frame) and the
real size ratio; 0 when any validator gate fails. "Meets T" = all gates pass and VMAF-NEG >= T.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compressor_svc.compressor import compress
from compressor_svc.job import CompressJob, CompressOptions, CompressOutcome
from mesh.codecs import CPU_ENCODERS
from mesh.errors import MeshError
from mesh.ffmpeg import run_ffmpeg_sync
from mesh.gates import all_passed
from mesh.media import probe

CLIPS_DIR = Path(os.environ.get("VIDAIO_CLIPS_DIR",
                                Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "clips"))


def reference_q(threshold: float) -> float:
    """The HEAD base miner's CQ by threshold (miner/compression/app.py @ fea3779)."""
    return 30.0 if threshold >= 93 else 35.0 if threshold >= 89 else 40.0


def build_input(sources: list[Path], dest: Path, *, chunk_seconds: float, size: str,
                rng: random.Random) -> Path:
    """A HEAD-style permuted clip from three sources (spec §4.1), downscaled to `size`."""
    width, height = size.split("x")
    shape = (f"fps=30,scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},"
             "setsar=1")
    frames = round(chunk_seconds * 30)
    graph, heads, tails = [], [], []
    for index, source in enumerate(sources):
        duration = probe(source).duration
        start = rng.uniform(0, max(0.0, duration - chunk_seconds - 0.2))
        split = round(frames * rng.uniform(0.15, 0.85))
        graph.append(f"[{index}:v]trim=start={start:.3f},setpts=PTS-STARTPTS,{shape},trim=end_frame={frames},"
                     f"setpts=PTS-STARTPTS,split[c{index}a][c{index}b]")
        graph.append(f"[c{index}a]trim=end_frame={split},setpts=PTS-STARTPTS[h{index}]")
        graph.append(f"[c{index}b]trim=start_frame={split},setpts=PTS-STARTPTS[t{index}]")
        heads.append(f"[h{index}]")
        tails.append(f"[t{index}]")
    order = [heads[0], tails[1], heads[2], tails[0], heads[1], tails[2]]
    graph.append(f"{''.join(order)}concat=n=6:v=1:a=0,format=yuv420p[v]")
    inputs = [arg for source in sources for arg in ("-i", str(source))]
    run_ffmpeg_sync(["-y", "-loglevel", "error", *inputs, "-filter_complex", ";".join(graph), "-map", "[v]",
                     "-an", "-r", "30", "-c:v", "libx264", "-preset", "fast", "-crf", "18",
                     "-pix_fmt", "yuv420p", str(dest)], timeout=600)
    return dest


@dataclass
class Run:
    method: str
    clip: str
    threshold: float
    codec: str
    score: float
    meets: bool
    ratio: float
    vmaf_neg: float
    seconds: float
    preset: str
    note: str


def method_options(method: str, codec: str, threshold: float) -> CompressOptions:
    encoder = CPU_ENCODERS[codec]
    if method == "a":
        return CompressOptions(fixed_q=reference_q(threshold), preset=encoder.default_preset, tuned=False)
    if method == "b":
        return CompressOptions(split_scenes=False, select_by_score=False, tuned=False,
                               preset=encoder.default_preset)
    if method == "c@b":
        return CompressOptions(preset=encoder.default_preset)
    return CompressOptions()


async def run_one(method: str, source: Path, work: Path, threshold: float, codec: str, budget: float) -> Run:
    options = method_options(method, codec, threshold)
    started = time.monotonic()
    try:
        outcome: CompressOutcome = await compress(source, work, CompressJob(threshold, codec), options,
                                                  budget_seconds=budget)
    except MeshError as exc:
        return Run(method, source.stem, threshold, codec, 0.0, False, 0.0, 0.0, time.monotonic() - started,
                   "-", f"FAILED {type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    passed = all_passed(outcome.gates)
    return Run(method, source.stem, threshold, codec, outcome.predicted_score if passed else 0.0,
               passed and outcome.vmaf_neg >= threshold, outcome.ratio, outcome.vmaf_neg, seconds,
               outcome.preset, outcome.note)


def summarise(runs: list[Run], methods: list[str]) -> None:
    print()
    print(f"{'method':8} {'mean score':>10} {'meets T':>8} {'mean ratio':>10} {'mean s':>7} {'total s':>8}")
    means = {}
    for method in methods:
        mine = [r for r in runs if r.method == method]
        means[method] = statistics.fmean(r.score for r in mine)
        print(f"{method:8} {means[method]:10.4f} {sum(r.meets for r in mine) / len(mine):8.0%} "
              f"{statistics.fmean(r.ratio for r in mine):10.2f} "
              f"{statistics.fmean(r.seconds for r in mine):7.1f} {sum(r.seconds for r in mine):8.1f}")
    for codec in sorted({r.codec for r in runs}):
        line = "  ".join(
            f"{m}={statistics.fmean(r.score for r in runs if r.method == m and r.codec == codec):.4f}"
            for m in methods)
        print(f"  {codec}: {line}")
    print()
    for other in ("b", "a"):
        if other in means and means[other] > 0:
            goal = {"b": 1.10, "a": 1.5}[other]
            ratio = means["c"] / means[other]
            verdict = "met" if ratio >= goal else "NOT met"
            print(f"score ratio (c)/({other}) = {ratio:.3f}  (goal >= {goal}: {verdict})")
    if "c@b" in means and means["b"] > 0:
        print(f"score ratio (c@b)/(b) = {means['c@b'] / means['b']:.3f}  "
              "(search and split alone, same preset)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-dir", type=Path, default=CLIPS_DIR)
    parser.add_argument("--clips", type=int, default=2, help="permuted inputs to build")
    parser.add_argument("--chunk-seconds", type=float, default=4.0,
                        help="seconds per source chunk (3 chunks per input)")
    parser.add_argument("--size", default="384x216", help="input WxH (multiples of 8)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[85, 89, 93])
    parser.add_argument("--codecs", nargs="+", default=["av1", "hevc"])
    parser.add_argument("--budget", type=float, default=30.0, help="seconds each method may spend per item")
    parser.add_argument("--seed", type=int, default=85)
    parser.add_argument("--ablation", action="store_true", help="also run ours at the baseline's preset")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    clips = sorted(p for p in args.clips_dir.glob("*.mp4"))
    methods = ["a", "b", "c"] + (["c@b"] if args.ablation else [])
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-compressor-") as tmp:
        root = Path(tmp)
        inputs = []
        for index in range(args.clips):
            sources = rng.sample(clips, 3)
            inputs.append(build_input(sources, root / f"permuted-{index}.mp4",
                                      chunk_seconds=args.chunk_seconds, size=args.size, rng=rng))
            facts = probe(inputs[-1])
            print(f"input {index}: {'+'.join(s.stem[:14] for s in sources)} {facts.width}x{facts.height} "
                  f"{facts.frame_count} frames {facts.size_bytes:,} B", flush=True)
        print(f"{'method':6} {'input':12} {'T':>4} {'codec':5} {'score':>6} {'meets':>5} {'ratio':>6} "
              f"{'neg':>6} {'s':>5} preset note", flush=True)
        for source in inputs:
            for codec in args.codecs:
                for threshold in args.thresholds:
                    for method in methods:
                        work = root / f"{source.stem}-{codec}-{threshold:g}-{method}"
                        run = await run_one(method, source, work, threshold, codec, args.budget)
                        runs.append(run)
                        print(f"{method:6} {run.clip:12} {threshold:4g} {codec:5} {run.score:6.3f} "
                              f"{'yes' if run.meets else 'NO':>5} {run.ratio:6.2f} {run.vmaf_neg:6.2f} "
                              f"{run.seconds:5.1f} {run.preset} {run.note}", flush=True)
    summarise(runs, methods)


if __name__ == "__main__":
    asyncio.run(main())
