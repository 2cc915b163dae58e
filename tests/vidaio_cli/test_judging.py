"""The demo's scoring glue: the spec's worked examples come out of the predictions (spec §5.1, §5.3), the
validator's VMAF frame sampling is reproduced, and real outputs pass or fail the right gates."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mesh.ffmpeg import run_ffmpeg_sync
from mesh.gates import Gate
from vidaio_cli import pieapp
from vidaio_cli.inputs import build_compression_inputs, build_upscaling_inputs
from vidaio_cli.judging import (
    compression_prediction,
    era_a_sample,
    head_upscaling_sample,
    judge_compression,
    judge_upscaling,
    upscaling_prediction,
)

PASS = [Gate("codec", True, "hevc")]
FAIL = [Gate("codec", True, "hevc"), Gate("fps", False, "25 vs 30")]
HD_CLIP = "synth_hd_1280x720_30fps.mp4"


@pytest.mark.parametrize(("vmaf_neg", "ratio", "expected"), [
    (89.0, 2, 0.222), (89.0, 10, 0.502), (89.0, 50, 0.870),
    (100.0, 2, 0.302), (100.0, 20, 0.893), (86.5, 20, 0.156), (86.5, 50, 0.199),
])
def test_compression_prediction_reproduces_the_spec_table(vmaf_neg, ratio, expected):
    score = compression_prediction(PASS, vmaf=vmaf_neg + 1, vmaf_neg=vmaf_neg, reference_bytes=1_000_000 * ratio,
                                   output_bytes=1_000_000, threshold=89.0)
    assert score == pytest.approx(expected, abs=0.0006)


def test_compression_prediction_is_zero_when_a_gate_fails_or_compression_is_too_small():
    assert compression_prediction(FAIL, 99.0, 99.0, 10_000, 1_000, 89.0) == 0.0
    assert compression_prediction(PASS, 99.0, 99.0, 1_250, 1_000, 89.0) == 0.0, "ratio 1.25 earns nothing"
    assert compression_prediction(PASS, 99.0, 83.9, 10_000, 1_000, 89.0) == 0.0, "more than 5 under T"


def test_era_a_compression_prediction_uses_vmaf_and_one_minus_c_to_the_1_5():
    score = compression_prediction(PASS, vmaf=95.0, vmaf_neg=None, reference_bytes=2_000, output_bytes=1_000,
                                   threshold=90.0, era="old")
    assert score == pytest.approx(0.8 * (1 - 0.5 ** 1.5) + 0.2 * 0.5)
    assert compression_prediction(PASS, 89.9, None, 2_000, 1_000, 90.0, era="old") == 0.0


@pytest.mark.parametrize(("distance", "length", "quality", "final"), [
    (0.0, 5, 1.000, 0.295), (0.5, 5, 0.600, None), (1.0, 5, 0.314, None), (2.0, 5, 0.000, 0.009),
    (0.0, 10, 1.000, 0.426),
])
def test_upscaling_prediction_reproduces_the_spec_examples(distance, length, quality, final):
    score, s_q = upscaling_prediction(PASS, distance, length)
    assert s_q == pytest.approx(quality, abs=0.0006)
    if final is not None:
        assert score == pytest.approx(final, abs=0.0006)
    assert upscaling_prediction(FAIL, distance, length)[0] == 0.0


def test_head_upscaling_sample_takes_every_nth_frame_after_the_skip():
    per_frame = tuple(float(i + 1) for i in range(300))
    for seed in range(50):
        value, how = head_upscaling_sample(per_frame, 30.0, random.Random(seed))
        rng = random.Random(seed)
        skip, step = rng.randrange(0, 30), rng.randrange(20, 30)
        picked = per_frame[skip + 1::step]
        assert how == f"skip={skip} n_subsample={step} frames={len(picked)}"
        assert value == pytest.approx(len(picked) / sum(1 / v for v in picked))


def test_head_upscaling_sample_is_never_empty_on_a_one_second_clip():
    per_frame = tuple(80.0 for _ in range(30))
    assert all(head_upscaling_sample(per_frame, 30.0, random.Random(seed))[0] == 80.0 for seed in range(200))


def test_era_a_sample_takes_five_distinct_frames():
    value, how = era_a_sample(tuple(float(i + 1) for i in range(30)), random.Random(4))
    assert how.startswith("frames [") and len(json.loads(how[len("frames "):])) == 5
    assert 1.0 <= value <= 30.0


def encode(source: Path, dest: Path, *args: str) -> Path:
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-i", str(source), *args, "-pix_fmt", "yuv420p", str(dest)])
    return dest


@pytest.fixture(scope="module")
def upscale_item(clips_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("upscale")
    [item] = build_upscaling_inputs(clips_dir / HD_CLIP, workdir, ["HD24K"], seconds=0.4, reference_height=144,
                                    era="head", rng=random.Random(5))
    return item


@pytest.fixture(scope="module")
def compress_item(clips_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("compress")
    [item] = build_compression_inputs(clips_dir / HD_CLIP, workdir, [(85, "hevc", "CRF", 5.0)], seconds=0.4,
                                      reference_height=144, era="head", rng=random.Random(6))
    return item


async def test_a_good_upscale_passes_every_gate_and_reports_pieapp_availability(upscale_item, tmp_path):
    output = encode(upscale_item.payload, tmp_path / "up.mp4", "-vf", "scale=iw*2:ih*2:flags=lanczos,setsar=1",
                    "-c:v", "libx265", "-crf", "18", "-tag:v", "hvc1")
    verdict = await judge_upscaling(upscale_item.reference, upscale_item.payload, output, task_scale=2,
                                    content_length=5, rng=random.Random(1))
    assert verdict.passed, [g for g in verdict.gates if not g.passed]
    assert {"resolution", "codec", "frame_count", "vmaf_floor"} <= {g.name for g in verdict.gates}
    assert verdict.vmaf >= 50
    if pieapp.unavailable_reason():
        assert verdict.score is None and any("PIE-APP unavailable" in note for note in verdict.notes)
    else:
        assert 0 < verdict.score <= 0.295


async def test_an_h264_upscale_fails_the_codec_gate(upscale_item, tmp_path):
    output = encode(upscale_item.payload, tmp_path / "up.mp4", "-vf", "scale=iw*2:ih*2,setsar=1", "-c:v", "libx264")
    verdict = await judge_upscaling(upscale_item.reference, upscale_item.payload, output, task_scale=2,
                                    content_length=5)
    assert [g.name for g in verdict.gates if not g.passed] == ["codec"]
    assert verdict.score == 0.0


async def test_a_good_compression_scores_with_the_head_formula(compress_item, tmp_path):
    output = encode(compress_item.reference, tmp_path / "c.mp4", "-vf", "setsar=1", "-c:v", "libx265", "-crf", "22",
                    "-tag:v", "hvc1")
    verdict = await judge_compression(compress_item.reference, output, vmaf_threshold=85, target_codec="hevc",
                                      codec_mode="CRF", target_bitrate=5.0)
    assert verdict.passed, [g for g in verdict.gates if not g.passed]
    reference_bytes, output_bytes = compress_item.reference.stat().st_size, output.stat().st_size
    assert verdict.ratio == pytest.approx(reference_bytes / output_bytes)
    assert verdict.score == compression_prediction(verdict.gates, verdict.vmaf, verdict.vmaf_neg, reference_bytes,
                                                   output_bytes, 85)
    assert verdict.score > 0 and 0 < verdict.vmaf_neg <= 100


async def test_compression_gates_catch_wrong_codec_size_and_bitrate(compress_item, tmp_path):
    output = encode(compress_item.reference, tmp_path / "c.mp4", "-vf", "scale=128:72,setsar=1", "-c:v", "libx264")
    verdict = await judge_compression(compress_item.reference, output, vmaf_threshold=89, target_codec="av1",
                                      codec_mode="VBR", target_bitrate=0.01)
    failed = {g.name for g in verdict.gates if not g.passed}
    assert {"resolution", "codec", "bitrate_cap", "vmaf"} <= failed
    assert verdict.vmaf_neg is None and verdict.score == 0.0
