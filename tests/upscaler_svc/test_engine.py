"""The engine interface: tiling, batching, backends, selection by name or automatically, cancellation."""

from __future__ import annotations

import numpy as np
import pytest

from mesh.errors import InvalidInput
from upscaler_svc.engine import (ENGINES, Cancelled, CpuEngine, EngineOptions, create_engine, register_engine,
                                 tile_spans)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def backend_engines(anime_checkpoint, cpu_engine) -> dict[str, CpuEngine]:
    """One loaded CPU engine per backend (torch is the shared `cpu_engine`)."""
    engines = {"torch": cpu_engine}
    for backend in ("onnxruntime", "openvino"):
        engines[backend] = CpuEngine(anime_checkpoint, EngineOptions(cpu_backend=backend))
        engines[backend].load()
    return engines


def test_tile_spans_cover_the_frame_without_gaps():
    assert tile_spans(100, 1024) == [(0, 100)]
    spans = tile_spans(100, 32)
    assert spans[0][0] == 0 and spans[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert max(end - start for start, end in spans) <= 32


@pytest.mark.parametrize("scale", [2, 4])
def test_tiles_with_overlap_match_the_whole_frame(anime_checkpoint, cpu_engine, frames, scale):
    tiled = CpuEngine(anime_checkpoint, EngineOptions(cpu_backend="torch", tile_size=24, tile_overlap=24))
    tiled.load()
    whole = cpu_engine.infer(frames[:1], scale).astype(int)
    pieces = tiled.infer(frames[:1], scale).astype(int)
    assert pieces.shape == whole.shape == (1, 32 * scale, 48 * scale, 3)
    # animevideov3 sees 18 px around a pixel (19 with the x2 bicubic), so 24 px of overlap is seamless.
    assert np.abs(pieces - whole).max() <= 1
    assert (pieces != whole).mean() < 1e-3


def test_a_batch_equals_frames_one_by_one(cpu_engine, frames):
    batch = cpu_engine.infer(frames, 2)
    singles = np.concatenate([cpu_engine.infer(frames[i:i + 1], 2) for i in range(len(frames))])
    assert batch.dtype == np.uint8 and batch.shape == (3, 64, 96, 3)
    assert np.abs(batch.astype(int) - singles).max() <= 1


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_other_backends_match_torch(backend_engines, frames, backend):
    engine, reference = backend_engines[backend], backend_engines["torch"]
    assert engine.describe() == f"cpu/{backend}" and reference.describe() == "cpu/torch"
    for scale in (2, 4):
        assert np.abs(engine.infer(frames, scale).astype(int) - reference.infer(frames, scale)).max() <= 1


def test_auto_backend_keeps_the_faster_by_measurement(anime_checkpoint):
    engine = CpuEngine(anime_checkpoint, EngineOptions(cpu_backend="auto"))
    engine.load()
    assert set(engine.calibration) == {"torch", "onnxruntime", "openvino"}
    assert engine.backend == min(engine.calibration, key=engine.calibration.get)
    assert engine.infer(np.zeros((1, 16, 16, 3), np.uint8), 2).shape == (1, 32, 32, 3)


def test_unsupported_scales_are_invalid_input(cpu_engine):
    for scale in (1, 3, 8):
        with pytest.raises(InvalidInput, match="scale"):
            cpu_engine.infer(np.zeros((1, 8, 8, 3), np.uint8), scale)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_cancellation_reaches_inside_a_single_tile(backend_engines, backend):
    """One tile covers the frame, and the between-tiles check says "go": only the check inside the
    network (torch: before each conv; onnxruntime: RunOptions.terminate; OpenVINO: InferRequest.cancel)
    can stop it."""
    engine = backend_engines[backend]
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        engine.infer(np.zeros((1, 160, 160, 3), np.uint8), 4, cancelled=cancelled)
    assert engine.infer(np.zeros((1, 16, 16, 3), np.uint8), 2).shape == (1, 32, 32, 3), "usable afterwards"


def test_engine_selection_by_name_and_auto(anime_checkpoint):
    assert isinstance(create_engine("auto", anime_checkpoint), CpuEngine)
    assert isinstance(create_engine("cpu", anime_checkpoint), CpuEngine)
    with pytest.raises(InvalidInput, match="unknown engine"):
        create_engine("tpu", anime_checkpoint)


def test_a_registered_gpu_engine_is_used_only_where_its_hardware_is(anime_checkpoint, monkeypatch):
    """A stand-in for the GPU issue's engines (no GPU here): registered but absent, auto skips it."""
    monkeypatch.delitem(ENGINES, "cuda", raising=False)

    class FakeCudaEngine(CpuEngine):
        kind = "cuda"

    register_engine("cuda", FakeCudaEngine, available=lambda: False)
    try:
        assert type(create_engine("auto", anime_checkpoint)) is CpuEngine
        with pytest.raises(InvalidInput, match="not present"):
            create_engine("cuda", anime_checkpoint)
        register_engine("cuda", FakeCudaEngine, available=lambda: True)
        assert type(create_engine("auto", anime_checkpoint)) is FakeCudaEngine
    finally:
        ENGINES.pop("cuda", None)
