"""The subnet validator's scores as pure functions (spec §5.1 and §5.3), so services can predict their pay.

Compression: the HEAD score (`calculate_compression_score @ fea3779`) and the Era A score
(`score_compression_synthetics @ 4f7579a`). Upscaling: the PIE-APP quality score S_Q, the length score S_L
and the final score S_F. Inputs are what the validator measures; nothing here touches files.
"""

from __future__ import annotations

import math

# HEAD compression (spec §5.3)
MIN_RATIO = 1.25
SOFT_MARGIN = 5.0
COMPRESSION_WEIGHT = 0.70
QUALITY_WEIGHT = 0.30
NORMALIZATION = 1.12
SUCCESS_SCORE = 0.08

# Era A compression (spec §5.3)
ERA_A_RATE_WEIGHT = 0.8
ERA_A_VMAF_WEIGHT = 0.2

# Upscaling (spec §5.1)
PIEAPP_CAP = 2.0
MAX_CONTENT_LENGTH = 320
FINAL_SCORE_GAIN = 6.979


def compression_rate(reference_bytes: int, output_bytes: int) -> float:
    """C = output/reference when the output is smaller, else 1 (the validator's `compression_rate`)."""
    if reference_bytes <= 0 or output_bytes <= 0:
        raise ValueError("file sizes must be positive")
    return output_bytes / reference_bytes if output_bytes < reference_bytes else 1.0


def head_compression_score(vmaf_neg: float, rate: float, threshold: float) -> float:
    """HEAD compression score in [0, 1] for VMAF-NEG `vmaf_neg`, compression rate C = `rate`, threshold T."""
    if rate >= 1 / MIN_RATIO:
        return 0.0
    ratio = 1.0 / rate
    if vmaf_neg < threshold - SOFT_MARGIN:
        return 0.0
    if vmaf_neg < threshold:
        position = (vmaf_neg - (threshold - SOFT_MARGIN)) / SOFT_MARGIN
        quality = 0.7 * position ** 2
        compression = ((ratio - 1) / 19) ** 1.5 if ratio <= 20 else 1 + 0.3 * math.log(ratio / 20)
        return min(1.0, compression * quality / NORMALIZATION)
    quality = 0.7 + 0.3 * min(1.0, (vmaf_neg - threshold) / (100 - threshold))
    compression = ((ratio - MIN_RATIO) / 18.75) ** 0.9 if ratio <= 20 else 1 + 0.1 * math.log(ratio / 20)
    return min(1.0, (COMPRESSION_WEIGHT * compression + QUALITY_WEIGHT * quality) / NORMALIZATION)


def era_a_compression_score(vmaf: float, rate: float, threshold: float) -> float:
    """Era A score: 0 below T, else 0.8·(1 − C^1.5) + 0.2·(V − T)/(100 − T) (VMAF v0.6.1, no cap)."""
    if vmaf < threshold:
        return 0.0
    return ERA_A_RATE_WEIGHT * (1 - rate ** 1.5) + ERA_A_VMAF_WEIGHT * (vmaf - threshold) / (100 - threshold)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _pieapp_curve(p: float) -> float:
    return (1 - math.log10(_sigmoid(p) + 1) / math.log10(3.5)) ** 2.5


def upscaling_quality_score(pieapp: float) -> float:
    """S_Q from the mean PIE-APP distance P (abs, capped at 2 as the validator does); 1 is best."""
    p = min(abs(pieapp), PIEAPP_CAP)
    at_zero, at_cap = _pieapp_curve(0.0), _pieapp_curve(PIEAPP_CAP)
    return 1 - (_pieapp_curve(p) - at_zero) / (at_cap - at_zero)


def upscaling_length_score(content_length: float) -> float:
    """S_L = ln(1 + L) / ln(321) for the requested content length L (5 or 10), not the real duration."""
    return math.log(1 + content_length) / math.log(1 + MAX_CONTENT_LENGTH)


def upscaling_final_score(quality_score: float, content_length: float) -> float:
    """S_F = 0.1·exp(6.979·(0.5·S_Q + 0.5·S_L − 0.5))."""
    preliminary = 0.5 * quality_score + 0.5 * upscaling_length_score(content_length)
    return 0.1 * math.exp(FINAL_SCORE_GAIN * (preliminary - 0.5))
