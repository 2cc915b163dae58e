"""PIE-APP glue. pyiqa's weights cannot be downloaded here, so the metric itself is a stand-in (named in
each test); the frame sampling, the abs/mean/cap rule and the availability message are the real code."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch

from mesh.ffmpeg import run_ffmpeg_sync
from vidaio_cli import pieapp
from vidaio_cli.inputs import build_reference

HD_CLIP = "synth_hd_1280x720_30fps.mp4"


@pytest.fixture()
def pair(clips_dir, tmp_path):
    reference = build_reference(clips_dir / HD_CLIP, tmp_path / "ref.mp4", start=2.0, seconds=0.4, height=144)
    distorted = tmp_path / "dist.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-i", str(reference), "-c:v", "libx265", "-crf", "30",
                     "-pix_fmt", "yuv420p", str(distorted)])
    return reference, distorted


def test_availability_is_explained_when_pyiqa_or_its_weights_are_missing():
    reason = pieapp.unavailable_reason()
    if importlib.util.find_spec("pyiqa") is None:
        assert reason == "PIE-APP unavailable: pyiqa is not installed (pip install '.[pieapp]')"
    elif pieapp._weights_path() is None:
        assert reason is not None and pieapp.WEIGHTS_FILE in reason
    else:
        assert reason is None


def test_distance_with_a_stand_in_metric_reads_4_consecutive_rgb_frames(pair, monkeypatch):
    seen = []

    def stand_in_metric(distorted, reference):
        seen.append((distorted.shape, float(distorted.max()), float(reference.max())))
        return torch.tensor([-0.5])

    monkeypatch.setattr(pieapp, "_metric", lambda: (stand_in_metric, torch.device("cpu")))
    distance = pieapp.pieapp_distance(*pair, reference_frames=12, rng=random.Random(1))
    assert distance == 0.5, "negative values are mirrored with abs()"
    assert len(seen) == pieapp.SAMPLE_FRAMES
    assert all(shape == (1, 3, 144, 256) and 0 < top <= 1 for shape, top, _ in seen)


def test_distance_is_capped_at_2_and_unreadable_output_scores_2(pair, tmp_path, monkeypatch):
    monkeypatch.setattr(pieapp, "_metric", lambda: (lambda d, r: torch.tensor([7.0]), torch.device("cpu")))
    assert pieapp.pieapp_distance(*pair, reference_frames=12, rng=random.Random(2)) == 2.0
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert pieapp.pieapp_distance(pair[0], broken, reference_frames=12, rng=random.Random(2)) == 2.0
