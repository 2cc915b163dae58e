"""The `cpu` engine: the network on the CPU through torch, onnxruntime or OpenVINO, fp32 or int8.

It is the engine every machine can run, so it carries the CPU-only machinery the others do not need:
choosing a backend by timing them at load, converting the network for onnxruntime and OpenVINO,
quantising it to int8 with NNCF on frames of a calibration video, and reaching into a running backend
to cancel a tile that takes seconds.

The runtimes (onnxruntime, OpenVINO, NNCF) and PyAV load only when the engine uses them, so a GPU image
without them still imports this module (the registry does) and runs the `cuda` engine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mesh.errors import Misconfigured
from upscaler_svc.engine import Cancelled, EngineOptions, TiledEngine
from upscaler_svc.weights import Checkpoint

if TYPE_CHECKING:
    import onnxruntime as ort
    import openvino as ov

log = logging.getLogger(__name__)

CPU_BACKENDS = ("torch", "onnxruntime", "openvino")


class CpuEngine(TiledEngine):
    """The CPU engine: torch (channels_last), onnxruntime or OpenVINO; `auto` times each at load and keeps
    the fastest (OpenVINO usually: its fused, blocked-layout kernels run ~1.8x ncnn on AVX2 here).

    A CPU tile can take seconds, so cancellation reaches inside it: torch checks before every convolution
    (a forward pre-hook), onnxruntime is stopped through its RunOptions.terminate flag and OpenVINO through
    InferRequest.cancel."""

    kind = "cpu"

    def __init__(self, checkpoint: Checkpoint, options: EngineOptions) -> None:
        super().__init__(checkpoint, options)
        self.backend = options.cpu_backend
        self.calibration: dict[str, float] = {}
        self._module: torch.nn.Module | None = None
        self._session: ort.InferenceSession | None = None
        self._openvino: OpenVinoRunner | None = None
        self._run: Callable[..., torch.Tensor] | None = None
        self._cancelled: Callable[[], bool] | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self._module = self.checkpoint.build().to(memory_format=torch.channels_last)
        for layer in self._module.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.register_forward_pre_hook(self._raise_if_cancelled)
        calibration = None
        if self.options.cpu_precision == "int8":
            calibration = self._int8_calibration()
            self.backend = "openvino"
        names = installed_cpu_backends() if self.backend == "auto" else (self.backend,)
        if "onnxruntime" in names:
            self._session = _onnx_session(self._module, self.options.threads)
        if "openvino" in names:
            self._openvino = OpenVinoRunner(self._module, self.options.threads, calibration)
        runs = {"torch": self._torch_forward, "onnxruntime": self._onnx_forward,
                "openvino": self._openvino_forward}
        if self.backend == "auto":
            self.calibration = _time_backends({name: runs[name] for name in names})
            self.backend = min(self.calibration, key=self.calibration.get)
            log.info("cpu backend chosen by measurement",
                     extra={"backend": self.backend, "seconds": self.calibration})
        self._run = runs[self.backend]
        if self.backend != "torch":
            self._module = None
        if self.backend != "onnxruntime":
            self._session = None
        if self.backend != "openvino":
            self._openvino = None

    def _int8_calibration(self) -> list[np.ndarray]:
        if self.backend not in ("auto", "openvino"):
            raise Misconfigured(f"int8 runs on the openvino CPU backend, not {self.backend}")
        if self.options.int8_calibration is None:
            raise Misconfigured("int8 needs a calibration video (UPSCALER_INT8_CALIBRATION): a clip like "
                               "the ones it will upscale")
        return calibration_samples(self.options.int8_calibration)

    def _raise_if_cancelled(self, module: torch.nn.Module, args: tuple) -> None:
        if self._cancelled is not None and self._cancelled():
            raise Cancelled()

    @torch.inference_mode()
    def _torch_forward(self, x: torch.Tensor, cancelled: Callable[[], bool] | None = None) -> torch.Tensor:
        self._cancelled = cancelled
        try:
            return self._module(x.contiguous(memory_format=torch.channels_last))
        finally:
            self._cancelled = None

    def _onnx_forward(self, x: torch.Tensor, cancelled: Callable[[], bool] | None = None) -> torch.Tensor:
        import onnxruntime as ort

        options = ort.RunOptions()
        finished = threading.Event()
        if cancelled is not None:
            threading.Thread(target=_terminate_when, args=(cancelled, options, finished), daemon=True).start()
        try:
            return torch.from_numpy(self._session.run(None, {"input": x.contiguous().numpy()}, options)[0])
        except Exception as exc:
            if cancelled is not None and cancelled():
                raise Cancelled() from exc
            raise
        finally:
            finished.set()

    def _openvino_forward(self, x: torch.Tensor, cancelled: Callable[[], bool] | None = None) -> torch.Tensor:
        return self._openvino.run(x, cancelled)

    def _forward(self, x: torch.Tensor, cancelled: Callable[[], bool] | None) -> torch.Tensor:
        # One job runs at a time per engine; the lock keeps a second caller from oversubscribing the cores.
        with self._lock:
            return self._run(x, cancelled)

    def close(self) -> None:
        self._module = self._session = self._openvino = self._run = None

    def describe(self) -> str:
        return f"cpu/{self.backend}" + ("/int8" if self.options.cpu_precision == "int8" else "")


def installed_cpu_backends() -> tuple[str, ...]:
    """torch always; onnxruntime and OpenVINO where their packages are installed (a GPU image may lack them)."""
    return tuple(name for name in CPU_BACKENDS if name == "torch" or importlib.util.find_spec(name) is not None)


def calibration_samples(video: Path, count: int = 16, side: int = 128, max_frames: int = 300) -> list[np.ndarray]:
    """`count` crops of `side` px (1×3×side×side floats in [0, 1]) from frames spread over the first
    `max_frames` of `video`, for int8 calibration: activation ranges come from real content, not noise."""
    import av

    rng = np.random.default_rng(85)
    crops = []
    try:
        with av.open(str(video)) as container:
            for frame in itertools.islice(container.decode(video=0), max_frames):
                pixels = frame.to_ndarray(format="rgb24")
                top = rng.integers(0, max(1, pixels.shape[0] - side + 1))
                left = rng.integers(0, max(1, pixels.shape[1] - side + 1))
                crops.append(pixels[top:top + side, left:left + side])
    except (av.FFmpegError, OSError) as exc:
        raise Misconfigured(f"int8 calibration video {video} is unreadable: {exc}") from exc
    if not crops:
        raise Misconfigured(f"int8 calibration video {video} has no frames")
    picks = np.linspace(0, len(crops) - 1, count).round().astype(int)
    return [np.ascontiguousarray(crops[i].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0 for i in picks]


class OpenVinoRunner:
    """The network converted once to OpenVINO (and quantised to int8 when calibration samples are given),
    compiled per input shape (static shapes run ~15 % faster than one dynamic compile; a video has a handful
    of tile shapes, compiling one takes ~0.2 s)."""

    MAX_SHAPES = 8

    def __init__(self, module: torch.nn.Module, threads: int,
                 calibration: list[np.ndarray] | None = None) -> None:
        import openvino as ov

        self._model = ov.convert_model(module, example_input=torch.rand(1, 3, 32, 32), input=[(-1, 3, -1, -1)])
        if calibration:
            self._model = _quantize(self._model, calibration)
        self._core = ov.Core()
        # f32 explicitly: on CPUs with bf16 (AVX512_BF16, AMX) OpenVINO otherwise runs the network in bf16,
        # up to 4 LSB from torch instead of 1; int8 keeps its unquantised layers in f32 too.
        self._config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._requests: dict[tuple[int, ...], ov.InferRequest] = {}

    def _request(self, shape: tuple[int, ...]) -> ov.InferRequest:
        if shape not in self._requests:
            if len(self._requests) >= self.MAX_SHAPES:
                self._requests.pop(next(iter(self._requests)))
            model = self._model.clone()
            model.reshape({0: list(shape)})
            self._requests[shape] = self._core.compile_model(model, "CPU", self._config).create_infer_request()
        return self._requests[shape]

    def run(self, x: torch.Tensor, cancelled: Callable[[], bool] | None) -> torch.Tensor:
        request = self._request(tuple(x.shape))
        request.start_async({0: x.contiguous().numpy()})
        while not request.wait_for(50):
            if cancelled is not None and cancelled():
                request.cancel()
                with contextlib.suppress(RuntimeError):
                    request.wait()
                raise Cancelled()
        return torch.from_numpy(request.get_output_tensor(0).data.copy())


def _quantize(model: ov.Model, samples: list[np.ndarray]) -> ov.Model:
    try:
        import nncf
    except ImportError as exc:
        raise Misconfigured("int8 needs NNCF: pip install 'vidaio-mesh[int8]'") from exc
    return nncf.quantize(model, nncf.Dataset(samples), preset=nncf.QuantizationPreset.MIXED,
                         subset_size=len(samples), fast_bias_correction=True)


def _terminate_when(cancelled: Callable[[], bool], options: ort.RunOptions,
                    finished: threading.Event) -> None:
    while not finished.wait(0.05):
        if cancelled():
            options.terminate = True
            return


def _onnx_session(module: torch.nn.Module, threads: int) -> ort.InferenceSession:
    import onnxruntime as ort

    buffer = io.BytesIO()
    sample = torch.rand(1, 3, 32, 32)
    axes = {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(module, (sample,), buffer, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": axes, "output": axes}, opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    # Idle workers sleep instead of spinning: the decoder and the encoder need those cores between runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def _time_backends(runs: dict[str, Callable[[torch.Tensor], torch.Tensor]], size: tuple[int, int] = (180, 320),
                   repeats: int = 2) -> dict[str, float]:
    """Best seconds per backend for one 320×180 tile: big enough that cache behaviour resembles real frames
    (torch falls behind OpenVINO as frames grow, so a small sample would pick it wrongly). Rounds are
    interleaved, so a burst of load elsewhere on the machine slows every backend alike."""
    sample = torch.rand(1, 3, *size)
    for run in runs.values():
        run(sample)
    best = dict.fromkeys(runs, math.inf)
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(sample)
            best[name] = min(best[name], time.perf_counter() - start)
    return best
