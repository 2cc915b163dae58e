"""Measure how the compressor's proxy reads against the validator's full measurement, and store the pairs.

For each clip, codec and q: encode the whole clip (at the preset real-size jobs use, --preset-*), measure
its VMAF-NEG on every frame (harmonic mean, the validator's number), and read the proxy of the same clip
encoded at the same settings. The pairs go to compressor_svc/data/proxy_bias.json, from which
`compressor_svc.proxy.correction()` fits the bias and spread the service uses (a test refits them).

    python scripts/fit_proxy_bias.py CLIP [CLIP ...] [--codecs av1 hevc] [--qs-av1 27 34] [--qs-hevc 19 25]
        [--preset-av1 10] [--preset-hevc ultrafast] [--append]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from compressor_svc.assemble import encode_args
from compressor_svc.context import JobContext
from compressor_svc.job import CompressJob, CompressOptions, Targets
from compressor_svc.planning import Clock, CostModel
from compressor_svc.proxy import BIAS_DATA, build_proxy, correction, probe_proxy
from compressor_svc.scenes import Scene
from mesh.codecs import select_encoder
from mesh.ffmpeg import run_ffmpeg
from mesh.media import probe
from mesh.progress import ProgressReporter
from mesh.vmaf import measure


async def pairs_for(clip: Path, codec: str, qs: list[float], preset: str, workdir: Path) -> list[dict]:
    job, options = CompressJob(89, codec), CompressOptions(allow_hardware=False)
    encoder = select_encoder(codec, allow_hardware=False)
    ctx = JobContext(source_path=clip, source=probe(clip), workdir=workdir, job=job, options=options,
                     targets=Targets.of(job, options), clock=Clock(3600), costs=CostModel(encoder, options.threads),
                     encoder=encoder, reporter=ProgressReporter())
    proxy = await build_proxy(ctx)
    found = []
    for q in qs:
        full_path = workdir / f"full-{codec}-{q:g}.mp4"
        await run_ffmpeg(encode_args(ctx, Scene(0, 0, ctx.source.frame_count), q, preset, full_path))
        full = (await measure(full_path, clip, models=("vmaf_neg",))).vmaf_neg
        reading, _, _ = await probe_proxy(ctx, proxy, q, preset)
        found.append({"clip": clip.name, "size": f"{ctx.source.width}x{ctx.source.height}",
                      "frames": ctx.source.frame_count, "codec": codec, "encoder": encoder.name, "preset": preset,
                      "q": q, "proxy": round(reading, 3), "full": round(full, 3)})
        print(json.dumps(found[-1]), flush=True)
        full_path.unlink()
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--codecs", nargs="+", default=["av1", "hevc"])
    parser.add_argument("--qs-av1", nargs="+", type=float, default=[27.0, 34.0])
    parser.add_argument("--qs-hevc", nargs="+", type=float, default=[19.0, 25.0])
    parser.add_argument("--preset-av1", default="10")
    parser.add_argument("--preset-hevc", default="ultrafast")
    parser.add_argument("--out", type=Path, default=BIAS_DATA)
    parser.add_argument("--append", action="store_true", help="keep the pairs already in --out")
    args = parser.parse_args()
    pairs = json.loads(args.out.read_text())["pairs"] if args.append and args.out.exists() else []
    started = time.monotonic()
    for clip in args.clips:
        for codec in args.codecs:
            with tempfile.TemporaryDirectory() as work:
                qs, preset = (args.qs_av1, args.preset_av1) if codec == "av1" else (args.qs_hevc, args.preset_hevc)
                pairs += await pairs_for(clip, codec, qs, preset, Path(work))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d"), "pairs": pairs}, indent=1) + "\n")
    correction.cache_clear()
    print(f"{len(pairs)} pairs in {time.monotonic() - started:.0f} s -> {args.out}: {correction()}")


if __name__ == "__main__":
    asyncio.run(main())
