"""PIE-APP as the subnet's upscaling scorer computes it (spec §5.1 step 2), when it can run here.

The validator uses pyiqa 0.1.14.1 `create_metric("pieapp")`: 4 consecutive frames from a random start,
read with OpenCV from the reference and the distorted video, BGR → RGB float in [0, 1] at full
resolution; P = min(mean |pieapp(dist, ref)|, 2), and P = 2 when the distorted frames cannot be read.
pyiqa is the optional extra `pieapp`, and it downloads its weights at first use, which this project never
lets it do: without the package or the cached weights file PIE-APP is reported unavailable.
"""

from __future__ import annotations

import functools
import importlib.util
import random
from pathlib import Path

from mesh.scoring import PIEAPP_CAP

SAMPLE_FRAMES = 4
WEIGHTS_FILE = "PieAPPv0.1.pth"


def _weights_path() -> Path | None:
    from pyiqa.utils.download_util import DEFAULT_CACHE_DIR

    path = Path(DEFAULT_CACHE_DIR) / WEIGHTS_FILE
    return path if path.is_file() else None


@functools.cache
def unavailable_reason() -> str | None:
    """None when PIE-APP can run offline, else why not (shown on the scorecard)."""
    if importlib.util.find_spec("pyiqa") is None:
        return "PIE-APP unavailable: pyiqa is not installed (pip install '.[pieapp]')"
    if _weights_path() is None:
        return f"PIE-APP unavailable: pyiqa's {WEIGHTS_FILE} weights are not in its cache (no download here)"
    return None


@functools.cache
def _metric():
    """(metric, device): pyiqa's PIE-APP on CUDA when there is one, as the validator runs it."""
    import pyiqa
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return pyiqa.create_metric("pieapp", device=device), device


def _read_frames(path: Path, start: int, count: int) -> list:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames = []
        for _ in range(count):
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        return frames
    finally:
        capture.release()


def _tensor(frame):
    import torch

    return torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float().div(255.0)


def pieapp_distance(reference: Path, distorted: Path, reference_frames: int, rng: random.Random) -> float:
    """The validator's P for one item (call only when `unavailable_reason()` is None)."""
    import torch

    start = rng.randint(0, max(0, reference_frames - SAMPLE_FRAMES))
    ref_frames = _read_frames(reference, start, SAMPLE_FRAMES)
    dist_frames = _read_frames(distorted, start, SAMPLE_FRAMES)
    if not dist_frames or len(dist_frames) < len(ref_frames):
        return PIEAPP_CAP
    metric, device = _metric()
    with torch.no_grad():
        values = [abs(float(metric(_tensor(dist).to(device), _tensor(ref).to(device))))
                  for ref, dist in zip(ref_frames, dist_frames)]
    return min(sum(values) / len(values), PIEAPP_CAP)
