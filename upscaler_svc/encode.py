"""The ffmpeg encoder the pipeline pipes raw upscaled frames into, set up to pass the validator's gates.

Raw RGB frames go to imageio-ffmpeg's ffmpeg on stdin at the source's exact rational frame rate with
`-fps_mode passthrough`, so every frame in is one frame out (no tpad, no drops). The output is MP4 with
faststart, yuv420p, SAR 1:1, HEVC Main (libx265, or hevc_nvenc where a GPU encoder really opens) or AV1
Main (libsvtav1 / av1_nvenc), carrying the source's colour tags. A VBV ceiling derived from the subnet's
size cap keeps the file under it without a second encode.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mesh.errors import InvalidInput
from mesh.ffmpeg import ffmpeg_exe, nvenc_available
from mesh.gates import UPSCALE_SIZE_MULTIPLIER
from mesh.media import MediaFacts

# Fraction of the size cap the bit-rate ceiling aims at, and bytes kept for the MP4 boxes.
CAP_HEADROOM = 0.6
CONTAINER_ALLOWANCE = 4096

# av.video.reformatter colourspace names and ffmpeg scale matrix names for a source's colour_space tag.
_SWS_MATRIX = {"bt709": ("ITU709", "bt709"), "smpte240m": ("SMPTE240M", "smpte240m"),
               "bt2020nc": ("BT2020", "bt2020"), "bt2020c": ("BT2020", "bt2020"), "fcc": ("FCC", "fcc"),
               "bt470bg": ("ITU601", "bt601"), "smpte170m": ("ITU601", "bt601")}


def rgb_matrix(source: MediaFacts) -> tuple[str, str]:
    """The YUV↔RGB matrix for this source, as (PyAV name for decoding, ffmpeg name for encoding; "" for
    untagged sources, which ffmpeg converts with BT.601 without tagging the output).

    Decoding and encoding use the same one, so colours survive the round trip."""
    return _SWS_MATRIX.get(source.color_space, ("ITU601", ""))


@dataclass(frozen=True)
class EncoderSettings:
    """Quality knobs per encoder family; the defaults suit the subnet's inputs (see README)."""

    x265_preset: str = "fast"
    x265_crf: int = 22
    svtav1_preset: int = 8
    svtav1_crf: int = 30
    nvenc_preset: str = "p5"
    nvenc_cq: int = 24
    use_nvenc: bool = True


def choose_encoder(codec: str, use_nvenc: bool = True) -> str:
    """ffmpeg encoder name for a codec family: NVENC only where it really opens, else the CPU encoder."""
    if codec not in ("hevc", "av1"):
        raise InvalidInput(f"output codec must be hevc or av1, got {codec!r}")
    gpu, cpu = (f"{codec}_nvenc", "libx265" if codec == "hevc" else "libsvtav1")
    return gpu if use_nvenc and nvenc_available(gpu) else cpu


def size_cap_bytes(source: MediaFacts, scale: int) -> int:
    return source.size_bytes * UPSCALE_SIZE_MULTIPLIER[scale]


def encoder_command(source: MediaFacts, scale: int, encoder: str, output: Path,
                    settings: EncoderSettings) -> list[str]:
    """The full ffmpeg argument list (no shell) reading rgb24 frames of the upscaled size on stdin."""
    width, height = source.width * scale, source.height * scale
    _, matrix = rgb_matrix(source)
    out_range = "pc" if source.color_range == "pc" else "tv"
    duration = max(source.frame_count / float(source.fps), 1 / float(source.fps))
    budget_bits = max(size_cap_bytes(source, scale) - CONTAINER_ALLOWANCE, 1024) * 8 * CAP_HEADROOM
    maxrate = int(budget_bits / duration)
    bufsize = int(maxrate * min(duration, 1.0) * 0.5)
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-framerate", _rational(source.fps), "-i", "pipe:0",
            "-vf", _filters(source, matrix, out_range),
            "-fps_mode", "passthrough", "-an",
            "-c:v", encoder, *_codec_args(encoder, settings),
            "-maxrate", str(maxrate), "-bufsize", str(bufsize)]
    return args + ["-movflags", "+faststart", "-f", "mp4", "-y", str(output)]


def _filters(source: MediaFacts, matrix: str, out_range: str) -> str:
    """RGB → yuv420p with the source's matrix and range, SAR 1:1, and the source's colour tags set on the
    frames (the encoder writes what the frames carry)."""
    scale = f"scale=out_range={out_range}" + (f":out_color_matrix={matrix}" if matrix else "")
    tags = [f"{name}={value}" for name, value in (("colorspace", source.color_space),
                                                  ("color_primaries", source.color_primaries),
                                                  ("color_trc", source.color_transfer)) if value]
    setparams = ",setparams=" + ":".join([f"range={out_range}", *tags])
    return f"{scale},format=yuv420p,setsar=1{setparams}"


def _rational(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def _codec_args(encoder: str, settings: EncoderSettings) -> list[str]:
    if encoder == "libx265":
        return ["-preset", settings.x265_preset, "-crf", str(settings.x265_crf), "-profile:v", "main",
                "-x265-params", "log-level=error:info=0", "-tag:v", "hvc1"]
    if encoder == "libsvtav1":
        return ["-preset", str(settings.svtav1_preset), "-crf", str(settings.svtav1_crf)]
    if encoder == "hevc_nvenc":
        return ["-preset", settings.nvenc_preset, "-rc", "vbr", "-cq", str(settings.nvenc_cq),
                "-profile:v", "main", "-tag:v", "hvc1"]
    if encoder == "av1_nvenc":
        return ["-preset", settings.nvenc_preset, "-rc", "vbr", "-cq", str(settings.nvenc_cq + 8)]
    raise InvalidInput(f"unsupported encoder {encoder!r}")


def start_encoder(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start ffmpeg in its own session (so cancellation can kill the group), stderr to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True)
