"""mesh.vmaf on real clips: both models in one libvmaf pass, harmonic means, windows, scaling, subsampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.ffmpeg import run_ffmpeg_sync
from mesh.vmaf import frame_seek_args, harmonic_mean, measure
from tests.conftest import cut_clip

CLIP = "synth_small_320x240_30fps.mp4"


@pytest.fixture(scope="module")
def reference(clips_dir: Path, tmp_path_factory) -> Path:
    return cut_clip(clips_dir / CLIP, tmp_path_factory.mktemp("vmaf") / "ref.mp4", frames=20)


@pytest.fixture(scope="module")
def distorted(reference: Path) -> Path:
    dest = reference.with_name("dist.mp4")
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-i", str(reference), "-c:v", "libx264", "-crf", "38",
                     "-pix_fmt", "yuv420p", str(dest)])
    return dest


def test_harmonic_mean_drops_zero_frames_like_the_validator():
    assert harmonic_mean([90.0, 0.0, 45.0]) == pytest.approx(60.0)
    assert harmonic_mean([0.0, -1.0]) == 0.0
    assert harmonic_mean([]) == 0.0


def test_frame_seek_args():
    assert frame_seek_args(0, 30) == []
    assert frame_seek_args(10, 30) == ["-ss", f"{9.5 / 30:.6f}"]


async def test_identical_video_scores_near_100(reference: Path):
    scores = await measure(reference, reference)
    assert scores.frame_numbers == tuple(range(20))
    assert scores.vmaf > 97 and scores.vmaf_neg > 97


async def test_one_pass_equals_single_model_passes(reference: Path, distorted: Path):
    both = await measure(distorted, reference)
    neg_only = await measure(distorted, reference, models=("vmaf_neg",))
    vmaf_only = await measure(distorted, reference, models=("vmaf",))
    assert both.vmaf_neg == pytest.approx(neg_only.vmaf_neg, abs=1e-6)
    assert both.vmaf == pytest.approx(vmaf_only.vmaf, abs=1e-6)
    assert 20 < both.vmaf_neg < 95, "a CRF 38 encode is clearly degraded"
    assert both.vmaf_neg <= both.vmaf + 0.5, "NEG never rewards what the default model does not"
    assert both.vmaf_neg == pytest.approx(harmonic_mean(both.per_frame["vmaf_neg"]))
    assert both.score("vmaf_neg", 0, 10) == pytest.approx(harmonic_mean(both.per_frame["vmaf_neg"][:10]))


async def test_reference_window_is_frame_exact(reference: Path, tmp_path: Path):
    window = tmp_path / "window.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", *frame_seek_args(7, 30), "-i", str(reference),
                     "-frames:v", "8", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(window)])
    aligned = await measure(window, reference, models=("vmaf_neg",), reference_start=7, frame_count=8,
                            reference_fps=30)
    shifted = await measure(window, reference, models=("vmaf_neg",), reference_start=8, frame_count=8,
                            reference_fps=30)
    assert len(aligned.frame_numbers) == 8
    assert aligned.vmaf_neg > 97
    assert shifted.vmaf_neg < aligned.vmaf_neg - 3


async def test_subsample_and_scaling(reference: Path, tmp_path: Path):
    sub = await measure(reference, reference, models=("vmaf",), n_subsample=5)
    assert sub.frame_numbers == (0, 5, 10, 15)
    small = tmp_path / "small.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-i", str(reference), "-vf", "scale=160:120",
                     "-c:v", "libx264", "-qp", "0", str(small)])
    upscaled = await measure(small, reference, scale_to_reference=True)
    assert 30 < upscaled.vmaf < 99


async def test_bad_arguments(reference: Path):
    with pytest.raises(ValueError):
        await measure(reference, reference, models=("psnr",))
    with pytest.raises(ValueError):
        await measure(reference, reference, reference_start=3)
