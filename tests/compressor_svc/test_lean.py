"""A lean job (the competition's cost-first policy): one small proxy search at the fastest preset and one
encode, never a whole-clip VMAF pass, still within the validator's format, ratio and bitrate gates."""

from __future__ import annotations

from pathlib import Path

import pytest

import compressor_svc.verify
from compressor_svc.compressor import LEAN_PROBES, compress
from compressor_svc.job import CompressJob, CompressOptions
from compressor_svc.proxy import WINDOW_FRAMES, WINDOWS, lean_windows
from mesh.codecs import select_encoder
from mesh.gates import all_passed, compression_gates, failures
from mesh.media import probe
from mesh.vmaf import measure
from tests.compressor_svc.test_pipeline import validator_style


def test_a_lean_proxy_samples_about_a_sixth_of_the_clip():
    assert lean_windows(150) == 2, "two windows at least, even on a 5-s clip"
    assert lean_windows(900) * WINDOW_FRAMES == 144, "a sixth of a 30-s clip"
    assert lean_windows(100_000) == WINDOWS, "never more windows than the full proxy"


@pytest.fixture(scope="module")
def clip(clips_dir: Path, tmp_path_factory) -> Path:
    return validator_style(clips_dir, tmp_path_factory.mktemp("lean") / "clip.mp4", frames_each=90)


@pytest.mark.parametrize("mode,bitrate", [("CRF", 0.0), ("VBR", 0.25)])
async def test_a_lean_job_measures_only_its_proxy(clip: Path, tmp_path: Path, monkeypatch, mode: str,
                                                  bitrate: float):
    whole_clip_passes = []

    async def refuse(*args, **kwargs):
        whole_clip_passes.append(args)
        raise AssertionError("a lean job never measures the whole output")

    monkeypatch.setattr(compressor_svc.verify, "measure", refuse)
    job = CompressJob(89, "av1", mode, bitrate)
    outcome = await compress(clip, tmp_path / "job", job, CompressOptions(threads=2, lean=True), budget_seconds=120)
    assert not whole_clip_passes
    assert outcome.preset == select_encoder("av1", allow_hardware=False).presets[-1], "the fastest preset"
    assert 1 <= outcome.probes <= LEAN_PROBES and outcome.scene_count == 1
    assert "lean: not measured" in outcome.note and not {"scenes", "verify"} & set(outcome.timings)
    source, output = probe(clip), probe(outcome.output)
    gates = compression_gates(source, output, "av1", mode, bitrate)
    assert all_passed(gates), failures(gates)
    measured = (await measure(outcome.output, clip, models=("vmaf_neg",))).vmaf_neg
    # The prediction is the proxy's reading less its spread: the output is not under it by more than that.
    assert measured >= outcome.vmaf_neg - 1.0, (measured, outcome.vmaf_neg)
    if mode == "CRF":
        assert measured >= job.threshold, "the margins put an unmeasured CRF output above T"
