"""The subnet validator's output gates (vidaio-subnet HEAD `validate_dist_encoding_settings` and the
synthetic scorers' checks), as pure functions over probed facts.

Services run them before upload (a failed gate is an error, not an upload); the demo and `vidaio-mesh
score` run them on what they download. Where our own rule is stricter than the validator's it says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.media import MP4_CONTAINER, MediaFacts

FRAME_TOLERANCE = 5
FPS_TOLERANCE = 0.3
UPSCALE_SIZE_MULTIPLIER = {2: 8, 4: 20}
MIN_COMPRESSION_RATIO = 1.25
BITRATE_CAP_FACTOR = 1.10
ALLOWED_PROFILES = {"av1": {"Main"}, "hevc": {"Main", "Main 10"}, "h264": {"Main", "High", "Baseline",
                                                                          "Constrained Baseline"},
                    "vp9": {"Profile 0"}}


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str



def all_passed(gates: list[Gate]) -> bool:
    return all(gate.passed for gate in gates)


def failures(gates: list[Gate]) -> str:
    """One line naming every failed gate, for error messages."""
    return "; ".join(f"{gate.name}: {gate.detail}" for gate in gates if not gate.passed)


def _gate(name: str, passed: bool, detail: str) -> Gate:
    return Gate(name, bool(passed), detail)


def _encoding_gates(reference: MediaFacts, output: MediaFacts, codec_families: set[str],
                    exact_frames: bool) -> list[Gate]:
    """Gates shared by both tasks: codec, container, profile, pixel format, SAR, fps, colour, frames."""
    allowed_profiles = ALLOWED_PROFILES.get(output.codec, set())
    frame_delta = abs(output.frame_count - reference.frame_count)
    frame_limit = 0 if exact_frames else FRAME_TOLERANCE
    tags = [(key, reference.color_tags[key], output.color_tags[key]) for key in reference.color_tags]
    colour_mismatch = [f"{key} {want}!={got}" for key, want, got in tags if want and got and want != got]
    return [
        _gate("codec", output.codec in codec_families, f"{output.codec} (want {'/'.join(sorted(codec_families))})"),
        _gate("container", output.container == MP4_CONTAINER, output.container),
        _gate("profile", output.profile in allowed_profiles, output.profile or "none"),
        _gate("pix_fmt", output.pix_fmt == "yuv420p", output.pix_fmt),
        _gate("sar", output.sample_aspect_ratio == "1:1", output.sample_aspect_ratio or "unset"),
        _gate("fps", abs(float(output.fps) - float(reference.fps)) <= FPS_TOLERANCE,
              f"{float(output.fps):.3f} vs {float(reference.fps):.3f}"),
        _gate("color_tags", not colour_mismatch, ", ".join(colour_mismatch) or "match"),
        _gate("frame_count", frame_delta <= frame_limit,
              f"{output.frame_count} vs {reference.frame_count} (tolerance {frame_limit})"),
    ]


def upscaling_gates(source: MediaFacts, output: MediaFacts, scale: int, *, exact_frames: bool = True) -> list[Gate]:
    """HEAD upscaling gates (spec §3.4). `source` is the miner's input; frames are exact by default
    (our rule; the validator allows ±5 and Era A demanded exact)."""
    want_w, want_h = source.width * scale, source.height * scale
    cap = source.size_bytes * UPSCALE_SIZE_MULTIPLIER[scale]
    return [
        _gate("decodable", output.width > 0 and output.height > 0, f"{output.width}x{output.height}"),
        _gate("resolution", (output.width, output.height) == (want_w, want_h),
              f"{output.width}x{output.height} (want {want_w}x{want_h})"),
        _gate("size_cap", output.size_bytes <= cap, f"{output.size_bytes} bytes (cap {cap})"),
        *_encoding_gates(source, output, {"hevc", "av1"}, exact_frames),
    ]


def compression_gates(reference: MediaFacts, output: MediaFacts, target_codec: str, codec_mode: str = "CRF",
                      target_bitrate_mbps: float = 0.0, *, exact_frames: bool = True) -> list[Gate]:
    """HEAD compression gates (spec §5.3) that need no VMAF: the caller adds the VMAF gates."""
    ratio = reference.size_bytes / output.size_bytes if output.size_bytes else 0.0
    gates = [
        _gate("resolution", (output.width, output.height) == (reference.width, reference.height),
              f"{output.width}x{output.height} (want {reference.width}x{reference.height})"),
        _gate("compression_ratio", ratio > MIN_COMPRESSION_RATIO, f"{ratio:.2f}x (need > {MIN_COMPRESSION_RATIO})"),
        *_encoding_gates(reference, output, {target_codec.lower()}, exact_frames),
    ]
    if codec_mode.upper() in ("VBR", "CBR"):
        cap = target_bitrate_mbps * 1e6 * BITRATE_CAP_FACTOR
        gates.append(_gate("bitrate_cap", 0 < output.bit_rate <= cap,
                           f"{output.bit_rate / 1e6:.3f} Mbps (cap {cap / 1e6:.3f})"))
    return gates


def vmaf_gates(vmaf: float, vmaf_neg: float, threshold: float, max_delta: float = 3.0) -> list[Gate]:
    """Compression's VMAF gates: VMAF-NEG against T−5 (zero score below) and the model delta."""
    return [
        _gate("vmaf_neg_floor", vmaf_neg >= threshold - 5, f"{vmaf_neg:.2f} (zero below {threshold - 5:.2f})"),
        _gate("vmaf_model_delta", abs(vmaf - vmaf_neg) <= max_delta,
              f"|{vmaf:.2f} - {vmaf_neg:.2f}| = {abs(vmaf - vmaf_neg):.2f} (max {max_delta})"),
    ]
