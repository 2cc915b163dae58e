"""The pure parts of the compressor: probe choice, scene curves, quality split, scene merging, queue, request
validation."""

from __future__ import annotations

import itertools
import math

import pytest

from compressor_svc.scenes import merge_boundaries
from compressor_svc.search import (
    EXTRAPOLATE_VMAF,
    Probe,
    SceneCurve,
    allocations,
    next_probe,
    uniform_allocation,
)
from compressor_svc.servicer import task_from_request
from mesh.codecs import CPU_ENCODERS, NVENC_ENCODERS, normalize_codec, select_encoder
from mesh.errors import InvalidInput
from mesh.v1 import common_pb2, compressor_pb2

AV1 = CPU_ENCODERS["av1"]


def synthetic(q: float, quality_at_40: float, frames: int = 30) -> Probe:
    """A scene like the real ones: ln(100.5 - VMAF-NEG) grows 0.1 per q step, the size halves every 14."""
    vmaf = 100.5 - (100.5 - quality_at_40) * math.exp(0.1 * (q - 40))
    return Probe(q, vmaf, int(frames * 2000 * math.exp(-0.05 * (q - 40))))


def search(target: float, quality_at_40: float, limit: int = 8) -> list[Probe]:
    probes: list[Probe] = []
    while len(probes) < limit:
        q = next_probe(probes, target, AV1)
        if q is None:
            break
        probes.append(synthetic(q, quality_at_40))
    return probes


@pytest.mark.parametrize("quality_at_40", [70.0, 80.0, 90.0, 97.0, 99.5])
def test_search_converges_just_above_target_in_few_probes(quality_at_40):
    probes = search(89.5, quality_at_40)
    passing = [p for p in probes if p.vmaf_neg >= 89.5]
    assert 1 <= len(probes) <= 5
    assert passing, "the search always ends holding a probe that meets the target"
    best = max(passing, key=lambda p: p.q)
    assert best.vmaf_neg - 89.5 <= 0.6 or best.q == AV1.q_max, "just above the target, or at the q limit"


def test_first_probe_uses_guess_or_warm_start():
    assert next_probe([], 89.0, AV1) == AV1.guess(92.0), "the first probe errs toward quality"
    assert next_probe([], 89.0, AV1, start=41.3) == 41.25
    assert AV1.guess(93) < AV1.guess(89) < AV1.guess(85), "a higher target starts at a lower q"


def test_curve_interpolates_and_extrapolates_monotonically():
    curve = SceneCurve([synthetic(40, 90), synthetic(44, 90)], AV1, 30)
    assert float(curve.vmaf(42)) == pytest.approx(synthetic(42, 90).vmaf_neg)
    assert float(curve.vmaf(46)) == pytest.approx(synthetic(46, 90).vmaf_neg), "extrapolated along the fit"
    assert float(curve.size(42)) == pytest.approx(60000 * math.exp(-0.1), rel=0.01)
    grid = curve.grid()
    assert grid.min() < 40 and grid.max() > 44, "a little room beyond the probes"
    values = curve.vmaf(grid)
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_split_spends_bits_where_they_buy_most_quality():
    """Two scenes of equal length; the easy one reaches the target cheaply. The frontier must contain a
    split that meets the whole-clip target with fewer bytes than giving both scenes the same q."""
    easy = SceneCurve([synthetic(q, 95) for q in (40, 44, 48, 52)], AV1, 30)
    hard = SceneCurve([synthetic(q, 85) for q in (30, 34, 38, 42)], AV1, 30)
    target = 89.5
    meeting = [a for a in allocations([easy, hard]) if a.vmaf_neg >= target]
    assert meeting
    best = min(meeting, key=lambda a: a.size)
    same_q = [q / 4 for q in range(120, 220)]
    uniform_sizes = [float(easy.size(q) + hard.size(q)) for q in same_q
                     if 60 / (30 / float(easy.vmaf(q)) + 30 / float(hard.vmaf(q))) >= target]
    assert best.size < min(uniform_sizes)
    predicted = 60 / (30 / float(easy.vmaf(best.qs[0])) + 30 / float(hard.vmaf(best.qs[1])))
    assert best.vmaf_neg == pytest.approx(predicted)
    per_scene = uniform_allocation([easy, hard], target)
    assert float(easy.vmaf(per_scene.qs[0])) >= target and float(hard.vmaf(per_scene.qs[1])) >= target


def test_merge_boundaries():
    scenes = merge_boundaries([10, 12, 50, 95], 100, min_frames=10, max_scenes=10)
    assert [(s.start, s.end) for s in scenes] == [(0, 10), (10, 50), (50, 100)], "short scenes merge"
    capped = merge_boundaries([20, 40, 60, 80], 100, min_frames=5, max_scenes=2)
    assert len(capped) == 2 and capped[0].start == 0 and capped[-1].end == 100
    assert sum(s.frames for s in capped) == 100
    assert merge_boundaries([], 7, min_frames=30, max_scenes=5)[0].frames == 7


def test_codecs_and_encoders():
    assert normalize_codec("H265") == "hevc" and normalize_codec("AV1") == "av1"
    with pytest.raises(InvalidInput):
        normalize_codec("mpeg2")
    assert select_encoder("hevc", allow_hardware=False).name == "libx265"
    assert select_encoder("av1").name in ("libsvtav1", "av1_nvenc"), "NVENC only where it really opens"
    args = AV1.args(41.25, "8", threads=2)
    assert args[:2] == ["-c:v", "libsvtav1"] and "crf=41.25:lp=2" in args[-1]
    assert AV1.args(41.25, "8", threads=2, max_kbps=4000)[-1].endswith("crf=41.25:lp=2:mbr=4000")
    x265 = select_encoder("hevc", allow_hardware=False).args(24, "fast", threads=2, max_kbps=4000)
    assert any(arg.endswith(":vbv-maxrate=4000:vbv-bufsize=8000") for arg in x265)
    nvenc = NVENC_ENCODERS["av1"].args(30, "p4", threads=2, max_kbps=4000)
    assert nvenc[-4:] == ["-maxrate", "4000k", "-bufsize", "8000k"]


def test_request_validation():
    good = compressor_pb2.CompressRequest(source_url="http://x/y.mp4", vmaf_threshold=89,
                                          target_codec=common_pb2.VIDEO_CODEC_HEVC,
                                          codec_mode=compressor_pb2.CODEC_MODE_VBR, target_bitrate_mbps=5)
    job = task_from_request(good, None).job
    assert (job.codec, job.mode, job.bitrate_mbps) == ("hevc", "VBR", 5)
    assert task_from_request(compressor_pb2.CompressRequest(source_url="u", vmaf_threshold=85), None).job.codec == "av1"
    bad = [dict(source_url=""), dict(vmaf_threshold=101), dict(vmaf_threshold=-1),
           dict(codec_mode=compressor_pb2.CODEC_MODE_CBR), dict(job_id="../etc")]
    for change in bad:
        request = compressor_pb2.CompressRequest(source_url="http://x/y.mp4", vmaf_threshold=89)
        for key, value in change.items():
            setattr(request, key, value)
        with pytest.raises(InvalidInput):
            task_from_request(request, None)


def test_one_probe_curves_assume_the_flattest_slope_toward_quality():
    from compressor_svc.search import UNMEASURED_SLOPE_FLOOR, distortion

    single = SceneCurve([Probe(30, 85.0, 1000)], AV1, 30)
    slope = -AV1.vmaf_slope / (100.5 - 90.0)  # the typical du/dq
    assert float(distortion(single.vmaf(26))) == pytest.approx(
        float(distortion(85.0)) - 4 * slope * UNMEASURED_SLOPE_FLOOR, rel=1e-6), "toward quality: the flatter"
    assert float(distortion(single.vmaf(34))) == pytest.approx(float(distortion(85.0)) + 4 * slope, rel=1e-6)
    assert single.highest_q(88.0) < 30 - (float(distortion(85.0)) - float(distortion(88.0))) / slope + 1e-9, \
        "reaching a higher target takes more q steps than the typical slope says"
    two = SceneCurve([Probe(30, 85.0, 1000), Probe(34, 80.0, 700)], AV1, 30)
    measured = (float(distortion(80.0)) - float(distortion(85.0))) / 4
    assert float(distortion(two.vmaf(26))) == pytest.approx(float(distortion(85.0)) - 4 * measured, rel=1e-6), \
        "two probes: the measured slope both ways"


def test_a_one_probe_curve_reaches_far_toward_quality_and_a_little_away_from_it():
    """A real-size job's one probe read 4 points under its target: the curve must still find a q predicted to
    reach it (with the flattest slope, so late rather than early), not stop at the edge of a 2.5-point reach."""
    hevc = CPU_ENCODERS["hevc"]
    curve = SceneCurve([Probe(23, 86.0, 1_000_000)], hevc, 900)
    q = curve.highest_q(90.5)
    assert q < 23 and curve.vmaf(q) >= 90.5
    assert curve.q_high <= 23 + EXTRAPOLATE_VMAF / -hevc.vmaf_slope + hevc.q_step, "toward lower quality as before"
