"""The cost-and-score benchmark: the §5.3 formulas against the spec's worked examples, the reference policy of
§7, and scripts/bench_competition.py end to end on a synthetic clip (real route service, real encodes, real
VMAF)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mesh.codecs import NVENC_ENCODERS
from mesh.ffmpeg import nvenc_available
from vidaio_cli import competition_scoring as cs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("gpu", "cpus", "per_second"), [
    ("L4", 16, 0.000853), ("L4", 4, 0.000380), ("L40S", 16, 0.001173), ("RTX-PRO-6000", 16, 0.001473)])
def test_locked_rates_match_the_spec_examples(gpu, cpus, per_second):
    assert cs.dollars_per_second(gpu, cpus) == pytest.approx(per_second, abs=5e-7)


def test_item_cost_splits_the_batch_and_has_a_floor():
    assert cs.item_cost(100.0, 4, "L4", 16) == pytest.approx(100 * 0.00085272 / 4)
    assert cs.item_cost(0.0, 1, "L4", 1) == cs.COST_FLOOR_USD
    with pytest.raises(ValueError):
        cs.dollars_per_second("H100", 4)


@pytest.mark.parametrize(("duration", "maximum", "weight"), [
    (5, 3600, 0.046), (10, 3600, 0.084), (60, 3600, 0.249), (600, 3600, 0.608), (1800, 3600, 0.836),
    (3600, 3600, 1.0), (5, 50, 0.204), (50, 50, 1.0)])
def test_length_weights_match_the_spec_table(duration, maximum, weight):
    assert cs.length_weight(duration, maximum) == pytest.approx(weight, abs=6e-4)


def test_final_score_aggregates_like_the_scorer():
    ours = [cs.ItemResult(5, True, 0.8, 2.0), cs.ItemResult(60, True, 0.6, 1.0), cs.ItemResult(10, False, 0.9, 0.1)]
    ref = [cs.ItemResult(5, True, 0.2, 1.0), cs.ItemResult(60, False, 0.0, 0.5), cs.ItemResult(10, True, 0.3, 0.5)]
    scores = cs.final_scores({"ours": ours, "ref": ref})
    w = [cs.length_weight(d) for d in (5, 60, 10)]
    total = sum(w)
    # ours: item 1 costs twice the cheapest; item 2's cheapest valid cost is its own (the reference's is
    # invalid and sets no minimum); item 3 is invalid: 0 everywhere.
    assert scores["ours"]["media_agg"] == pytest.approx((w[0] * 0.8 + w[1] * 0.6) / total)
    assert scores["ours"]["cost_agg"] == pytest.approx((w[0] * 0.5 + w[1] * 1.0) / total)
    assert scores["ours"]["coverage"] == pytest.approx((w[0] + w[1]) / total)
    assert scores["ref"]["cost_agg"] == pytest.approx((w[0] + w[2]) / total)
    expected = 0.6 * scores["ref"]["media_agg"] + 0.25 * scores["ref"]["cost_agg"] + 0.15 * scores["ref"]["coverage"]
    assert scores["ref"]["final"] == pytest.approx(expected, abs=1e-8)
    assert cs.final_scores({"ours": ours, "ref": ref}, cs.COMP01_FACTORS)["ours"]["final"] == pytest.approx(
        0.6 * scores["ours"]["media_agg"] + 0.4 * scores["ours"]["coverage"], abs=1e-8)


def test_reference_policy_is_the_spec_table():
    assert [cs.reference_cq(t) for t in (95, 93, 92.9, 89, 88, 85, None)] == [30, 30, 35, 35, 40, 40, 35]
    args = cs.reference_args(Path("/in.mp4"), Path("/out.mp4"), threshold=85)
    assert args[args.index("-crf") + 1] == "40" and args[args.index("-c:v") + 1] == "libsvtav1"
    assert args[args.index("-vf") + 1] == "setsar=1" and args[args.index("-c:a") + 1] == "copy"
    nvenc = cs.reference_args(Path("/in.mp4"), Path("/out.mp4"), threshold=93, mode="VBR", target_bitrate=5_000_000,
                              nvenc=True)
    assert nvenc[nvenc.index("-c:v") + 1] == "av1_nvenc" and nvenc[nvenc.index("-b:v") + 1] == "5000000"
    assert "-cq" not in nvenc and nvenc[nvenc.index("-preset") + 1] == "p4"


def test_benchmark_runs_end_to_end_on_a_synthetic_clip(tmp_path):
    out = tmp_path / "competition.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_competition.py"), "--clips-dir",
                    str(tmp_path / "no-clips"), "--lengths", "2", "--thresholds", "85", "--gpu", "L40S",
                    "--cpus", "2", "--out", str(out)], cwd=ROOT, env=env, check=True, timeout=600,
                   capture_output=True)
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["seconds"] == pytest.approx(2.0, abs=0.1)
    for name in ("ours", "reference"):
        result = row[name]
        assert result["valid"], result["reason"]
        assert result["ratio"] >= 1.25
        rate = cs.dollars_per_second("L40S", 2)  # wall_s is rounded to 0.01 s, the cost is not
        assert result["cost_usd"] == pytest.approx(result["wall_s"] * rate, rel=0.01, abs=0.006 * rate)
    # Our entry searches for the threshold, so it meets it; the reference's fixed CQ does not look.
    assert row["ours"]["vmaf_neg"] >= 85
    assert row["ours"]["media"] > 0
    media = {name: report["final"]["example_manifest"][name]["media_agg"] for name in ("ours", "reference")}
    assert media["ours"] == pytest.approx(row["ours"]["media"])
    if media["reference"]:
        assert report["media_ratio"] == pytest.approx(media["ours"] / media["reference"])
    else:
        assert report["media_ratio"] is None
    assert report["reference_encoder"] == ("av1_nvenc" if nvenc_available(NVENC_ENCODERS["av1"].name) else "libsvtav1")
