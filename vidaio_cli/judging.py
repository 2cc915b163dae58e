"""Score one returned video the way the subnet's scorer does (spec §3.4, §4.4, §5.1, §5.3).

Gates come from mesh.gates, VMAF from mesh.vmaf, the formulas from mesh.scoring; this module only puts
them in the validator's order and samples frames the way it does:
- HEAD upscaling: VMAF v0.6.1 of the output against the full-resolution reference, harmonic mean over the
  frames libvmaf sees after `select=gt(n, skip)` with `n_subsample` (skip random in [0, fps), n_subsample
  random in [20, 30)); gate VMAF ≥ 50; then PIE-APP → S_Q, S_L, S_F when PIE-APP can run.
- HEAD compression: VMAF-NEG and VMAF v0.6.1 over the full video, the encoding gates, the model-delta
  gate and the piecewise HEAD score.
- Era A: exact frame counts, VMAF v0.6.1 on 5 random frames, Era A formulas, no codec checks.
Every frame is measured once and the validator's sample is pooled from it, so the full-video figure is
reported beside the sampled one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from mesh.errors import InvalidInput
from mesh.gates import Gate, all_passed, compression_gates, upscaling_gates, vmaf_gates
from mesh.media import MediaFacts, probe
from mesh.scoring import (
    SUCCESS_SCORE,
    compression_rate,
    era_a_compression_score,
    head_compression_score,
    upscaling_final_score,
    upscaling_length_score,
    upscaling_quality_score,
)
from mesh.vmaf import harmonic_mean, measure
from vidaio_cli import pieapp

UPSCALING_VMAF_FLOOR = 50.0
MIN_REFERENCE_FRAMES = 10
ERA_A_VMAF_SAMPLES = 5
REFERENCE_PROBLEM_SCORE = -100.0
VMAF_TIMEOUT = 1800.0
ERA_A_UPSCALING_GATES = {"decodable", "resolution", "frame_count"}


@dataclass
class Verdict:
    gates: list[Gate] = field(default_factory=list)
    vmaf: float | None = None
    vmaf_neg: float | None = None
    ratio: float | None = None
    score: float | None = None
    details: dict[str, float | str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.gates) and all_passed(self.gates)


def _gate(name: str, passed: bool, detail: str) -> Gate:
    return Gate(name, bool(passed), detail)


def upscaling_prediction(gates: list[Gate], pieapp_distance: float, content_length: int) -> tuple[float, float]:
    """(S_F, S_Q) from the measured PIE-APP distance; S_F is 0 when any gate failed."""
    quality = upscaling_quality_score(pieapp_distance)
    return (upscaling_final_score(quality, content_length) if all_passed(gates) else 0.0), quality


def compression_prediction(gates: list[Gate], vmaf: float | None, vmaf_neg: float | None, reference_bytes: int,
                           output_bytes: int, threshold: float, era: str = "head") -> float:
    """The compression score from measured figures: 0 when any gate failed, else HEAD's piecewise score
    of VMAF-NEG (or Era A's score of VMAF)."""
    if not all_passed(gates):
        return 0.0
    rate = compression_rate(reference_bytes, output_bytes)
    if era == "old":
        return era_a_compression_score(vmaf, rate, threshold)
    return head_compression_score(vmaf_neg, rate, threshold)


def _probe_output(output: Path, verdict: Verdict) -> MediaFacts | None:
    try:
        return probe(output)
    except InvalidInput as exc:
        verdict.gates.append(_gate("decodable", False, str(exc)))
        verdict.score = 0.0
        return None


def head_upscaling_sample(per_frame: tuple[float, ...], fps: float, rng: random.Random) -> tuple[float, str]:
    """The validator's sampled VMAF: frames after a random skip, every n_subsample-th, pooled harmonically.

    The skip is kept below the clip's last frame so the sample is never empty (a 1-s clip could otherwise
    leave nothing after `select=gt(n, 29)`)."""
    skip = rng.randrange(0, max(1, min(round(fps), len(per_frame) - 1)))
    n_subsample = rng.randrange(20, 30)
    sampled = per_frame[skip + 1::n_subsample]
    return harmonic_mean(sampled), f"skip={skip} n_subsample={n_subsample} frames={len(sampled)}"


def era_a_sample(per_frame: tuple[float, ...], rng: random.Random) -> tuple[float, str]:
    """Era A's VMAF: 5 random frames of the whole clip, harmonic mean."""
    indices = sorted(rng.sample(range(len(per_frame)), min(ERA_A_VMAF_SAMPLES, len(per_frame))))
    return harmonic_mean(per_frame[i] for i in indices), f"frames {indices}"


async def judge_upscaling(reference: Path, payload: Path, output: Path, *, task_scale: int, content_length: int,
                          era: str = "head", rng: random.Random | None = None) -> Verdict:
    """Gates, VMAF and (with PIE-APP) S_Q/S_L/S_F of an upscaled `output` of `payload` vs `reference`."""
    rng = rng or random.Random()
    verdict = Verdict()
    ref = probe(reference)
    if ref.frame_count < MIN_REFERENCE_FRAMES:
        verdict.score = REFERENCE_PROBLEM_SCORE
        verdict.notes.append(f"reference has {ref.frame_count} frames (< {MIN_REFERENCE_FRAMES}): -100, "
                             "excluded from the EMA")
        return verdict
    out = _probe_output(output, verdict)
    if out is None:
        return verdict
    gates = upscaling_gates(probe(payload), out, task_scale, exact_frames=era == "old")
    if era == "old":
        gates = [gate for gate in gates if gate.name in ERA_A_UPSCALING_GATES]
    verdict.gates = gates
    if (out.width, out.height) != (ref.width, ref.height):
        verdict.gates.append(_gate("vmaf", False, "not measured: output size differs from the reference"))
        verdict.score = 0.0
        return verdict
    scores = await measure(output, reference, models=("vmaf",), timeout=VMAF_TIMEOUT)
    per_frame = scores.per_frame["vmaf"]
    if era == "old":
        verdict.vmaf, how = era_a_sample(per_frame, rng)
    else:
        verdict.vmaf, how = head_upscaling_sample(per_frame, float(ref.fps), rng)
    verdict.details.update(vmaf_sample=how, vmaf_all_frames=round(scores.vmaf, 3))
    verdict.gates.append(_gate("vmaf_floor", verdict.vmaf >= UPSCALING_VMAF_FLOOR,
                               f"{verdict.vmaf:.2f} (zero below {UPSCALING_VMAF_FLOOR:.0f})"))
    if not verdict.passed:
        verdict.score = 0.0
        return verdict
    reason = pieapp.unavailable_reason()
    length_score = upscaling_length_score(content_length)
    verdict.details["s_l"] = round(length_score, 4)
    if reason is not None:
        verdict.notes.append(f"{reason}; score shown as gates + VMAF only (S_F would lie in "
                             f"[{upscaling_final_score(0, content_length):.3f}, "
                             f"{upscaling_final_score(1, content_length):.3f}] for L={content_length})")
        return verdict
    distance = pieapp.pieapp_distance(reference, output, ref.frame_count, rng)
    verdict.score, quality = upscaling_prediction(verdict.gates, distance, content_length)
    verdict.details.update(pieapp=round(distance, 4), s_q=round(quality, 4),
                           success=str(verdict.score > SUCCESS_SCORE))
    return verdict


async def judge_compression(reference: Path, output: Path, *, vmaf_threshold: float, target_codec: str,
                            codec_mode: str, target_bitrate: float, era: str = "head",
                            rng: random.Random | None = None) -> Verdict:
    """Gates, VMAF, VMAF-NEG, ratio and the HEAD (or Era A) compression score of `output` vs `reference`."""
    rng = rng or random.Random()
    verdict = Verdict()
    ref = probe(reference)
    out = _probe_output(output, verdict)
    if out is None:
        return verdict
    rate = compression_rate(ref.size_bytes, out.size_bytes)
    verdict.ratio = ref.size_bytes / out.size_bytes
    verdict.details["compression_rate"] = round(rate, 4)
    if era == "old":
        verdict.gates = [
            _gate("resolution", (out.width, out.height) == (ref.width, ref.height),
                  f"{out.width}x{out.height} (want {ref.width}x{ref.height})"),
            _gate("frame_count", out.frame_count == ref.frame_count, f"{out.frame_count} vs {ref.frame_count}"),
        ]
    else:
        verdict.gates = compression_gates(ref, out, target_codec, codec_mode, target_bitrate, exact_frames=False)
    if (out.width, out.height) != (ref.width, ref.height):
        verdict.gates.append(_gate("vmaf", False, "not measured: output size differs from the reference"))
        verdict.score = 0.0
        return verdict
    models = ("vmaf",) if era == "old" else ("vmaf", "vmaf_neg")
    scores = await measure(output, reference, models=models, timeout=VMAF_TIMEOUT)
    if era == "old":
        verdict.vmaf, how = era_a_sample(scores.per_frame["vmaf"], rng)
        verdict.details.update(vmaf_sample=how, vmaf_all_frames=round(scores.vmaf, 3))
        verdict.gates.append(_gate("vmaf_threshold", verdict.vmaf >= vmaf_threshold,
                                   f"{verdict.vmaf:.2f} (zero below {vmaf_threshold:.0f})"))
        verdict.score = compression_prediction(verdict.gates, verdict.vmaf, None, ref.size_bytes, out.size_bytes,
                                               vmaf_threshold, era)
        return verdict
    verdict.vmaf, verdict.vmaf_neg = scores.vmaf, scores.vmaf_neg
    verdict.gates += vmaf_gates(verdict.vmaf, verdict.vmaf_neg, vmaf_threshold)
    verdict.score = compression_prediction(verdict.gates, verdict.vmaf, verdict.vmaf_neg, ref.size_bytes,
                                           out.size_bytes, vmaf_threshold, era)
    if verdict.passed and verdict.vmaf_neg < vmaf_threshold:
        verdict.notes.append(f"VMAF-NEG below T={vmaf_threshold:.0f}: soft zone, partial credit")
    verdict.notes.append("not reproduced: the validator's tone-manipulation and chroma-energy detectors")
    verdict.details["success"] = str(verdict.score > SUCCESS_SCORE)
    return verdict
