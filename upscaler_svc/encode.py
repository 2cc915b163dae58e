"""The ffmpeg encoder the pipeline pipes raw upscaled frames into, set up to pass the validator's gates.

Raw RGB frames go to imageio-ffmpeg's ffmpeg on stdin at the source's exact rational frame rate with
`-fps_mode passthrough`, so every frame in is one frame out (no tpad, no drops). The output is MP4 with
faststart, yuv420p, SAR 1:1, HEVC Main (libx265, or hevc_nvenc where a GPU encoder really opens) or AV1
Main (libsvtav1 / av1_nvenc), carrying the source's colour tags. A VBV ceiling derived from the subnet's
size cap keeps the file under it without a second encode.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mesh.codecs import UPSCALE_CODECS, Encoder, normalize_codec, select_encoder
from mesh.ffmpeg import ffmpeg_exe
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
    """Quality knobs per encoder family; the defaults suit the subnet's inputs (see docs/services.md)."""

    x265_preset: str = "fast"
    x265_crf: int = 22
    svtav1_preset: int = 8
    svtav1_crf: int = 30
    nvenc_preset: str = "p5"
    nvenc_cq: int = 24
    use_nvenc: bool = True

    def quality(self, encoder: str) -> tuple[float, str]:
        """(q, preset) for an encoder of mesh.codecs; AV1 NVENC's CQ scale sits 8 above HEVC's."""
        return {"libx265": (self.x265_crf, self.x265_preset),
                "libsvtav1": (self.svtav1_crf, str(self.svtav1_preset)),
                "hevc_nvenc": (self.nvenc_cq, self.nvenc_preset),
                "av1_nvenc": (self.nvenc_cq + 8, self.nvenc_preset)}[encoder]


def choose_encoder(codec: str, use_nvenc: bool = True) -> Encoder:
    """The encoder for an upscaled output: NVENC only where it really opens, else the CPU encoder."""
    return select_encoder(normalize_codec(codec, UPSCALE_CODECS), allow_hardware=use_nvenc)


def size_cap_bytes(source: MediaFacts, scale: int) -> int:
    return source.size_bytes * UPSCALE_SIZE_MULTIPLIER[scale]


def encoder_command(source: MediaFacts, scale: int, encoder: Encoder, output: Path,
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
            *_codec_args(encoder, settings),
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


def _codec_args(encoder: Encoder, settings: EncoderSettings) -> list[str]:
    """The shared encoder table's arguments at this service's quality; x265's psychovisual tuning stays on
    (upscales are judged by PIE-APP, not VMAF-NEG)."""
    q, preset = settings.quality(encoder.name)
    return encoder.args(q, preset, threads=os.cpu_count() or 1, tuned=False)


def start_encoder(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start ffmpeg in its own session (so cancellation can kill the group), stderr to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True)
