"""The subnet's scores reproduce the spec's worked examples (§5.1, §5.3) at their printed precision."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from mesh.scoring import (
    compression_rate,
    era_a_compression_score,
    head_compression_score,
    upscaling_final_score,
    upscaling_length_score,
    upscaling_quality_score,
)

RATIOS = (2, 5, 10, 20, 50)


def printed(value: float, places: int = 3) -> float:
    """Round half-up as the spec prints (0.8125 -> 0.813), after removing float noise (0.81249999...)."""
    exact = Decimal(repr(round(value, 9)))
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("threshold", [85, 89, 93])
@pytest.mark.parametrize(("offset", "expected"), [
    ("T", (0.222, 0.334, 0.502, 0.813, 0.870)),
    ("100", (0.302, 0.415, 0.583, 0.893, 0.950)),
    ("T-2.5", (0.002, 0.015, 0.051, 0.156, 0.199)),
])
def test_head_score_matches_spec_table(threshold, offset, expected):
    vmaf_neg = {"T": threshold, "100": 100.0, "T-2.5": threshold - 2.5}[offset]
    got = tuple(printed(head_compression_score(vmaf_neg, 1 / ratio, threshold)) for ratio in RATIOS)
    assert got == expected


def test_head_score_gates():
    assert head_compression_score(99.0, 0.80, 89) == 0.0, "ratio 1.25 is no meaningful compression"
    assert head_compression_score(99.0, 0.79, 89) > 0.0
    assert head_compression_score(83.99, 0.1, 89) == 0.0, "more than 5 under T scores 0"
    assert head_compression_score(84.0, 0.1, 89) == 0.0, "the soft zone starts at T-5 with quality 0"
    assert head_compression_score(88.99, 0.1, 89) < head_compression_score(89.0, 0.1, 89)
    assert head_compression_score(100, 1 / 1e6, 85) == 1.0, "capped at 1"


def test_head_score_trade_off_depends_on_ratio():
    """Why candidates are chosen by the score itself: below 20x ratio dominates, above it quality does."""
    assert head_compression_score(89.0, 1 / 11, 89) > head_compression_score(90.0, 1 / 10, 89)
    assert head_compression_score(90.0, 1 / 40, 89) > head_compression_score(89.0, 1 / 44, 89)


def test_compression_rate():
    assert compression_rate(1000, 250) == 0.25
    assert compression_rate(1000, 1000) == 1.0
    assert compression_rate(1000, 2000) == 1.0
    with pytest.raises(ValueError):
        compression_rate(0, 10)


def test_era_a_score():
    assert era_a_compression_score(89.9, 0.1, 90) == 0.0
    assert era_a_compression_score(90, 0.25, 90) == pytest.approx(0.8 * (1 - 0.125))
    assert era_a_compression_score(95, 0.25, 90) == pytest.approx(0.8 * 0.875 + 0.2 * 0.5)
    assert era_a_compression_score(100, 1.0, 85) == pytest.approx(0.2)


@pytest.mark.parametrize(("pieapp", "expected"), [
    (0.0, 1.000), (0.25, 0.786), (0.75, 0.444), (1.0, 0.314), (1.5, 0.122), (2.0, 0.000)])
def test_upscaling_quality_score_examples(pieapp, expected):
    assert printed(upscaling_quality_score(pieapp)) == expected


def test_upscaling_quality_score_at_half():
    """The spec prints 0.600 for P = 0.5; the formula gives 0.60052, i.e. the spec truncated this one."""
    assert upscaling_quality_score(0.5) == pytest.approx(0.600, abs=6e-4)
    assert upscaling_quality_score(0.5) == pytest.approx(0.6005199, abs=1e-7)


def test_upscaling_quality_score_clamps_like_validator():
    assert upscaling_quality_score(3.0) == upscaling_quality_score(2.0) == pytest.approx(0.0, abs=1e-12)
    assert upscaling_quality_score(-0.25) == upscaling_quality_score(0.25)


def test_upscaling_length_score():
    assert printed(upscaling_length_score(5), 4) == 0.3105
    assert printed(upscaling_length_score(10), 4) == 0.4155


def test_upscaling_final_score_examples():
    scores = [printed(upscaling_final_score(s_q, 5)) for s_q in (1, 0.8, 0.5, 0)]
    assert scores == [0.295, 0.147, 0.052, 0.009]
    assert printed(upscaling_final_score(1, 10)) == 0.426
