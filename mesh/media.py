"""Probing videos: `probe` reads the facts the validator reads with ffprobe (fetching is `mesh.sources`)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from mesh.errors import InvalidInput

MAX_DIMENSION = 8192
MP4_CONTAINER = "mov,mp4,m4a,3gp,3g2,mj2"

# ffmpeg's names for the AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace enums, as ffprobe prints
_PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
              10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "jedec-p22"}
_TRANSFER = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 9: "log100",
             10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10",
             15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
_SPACE = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco", 9: "bt2020nc",
          10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc", 13: "chroma-derived-c", 14: "ictcp"}
_RANGE = {1: "tv", 2: "pc"}


def codec_family(decoder_name: str) -> str:
    """The codec family (av1, hevc, h264, vp9, ...) of a decoder name such as libdav1d or libvpx-vp9."""
    name = decoder_name.lower()
    for family, markers in (("av1", ("av1", "dav1d", "aom")), ("hevc", ("hevc", "h265")),
                            ("h264", ("h264",)), ("vp9", ("vp9",))):
        if any(marker in name for marker in markers):
            return family
    return name


@dataclass(frozen=True)
class MediaFacts:
    """What the validator's ffprobe sees in a video file."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    codec: str
    profile: str
    pix_fmt: str
    container: str
    size_bytes: int
    bit_rate: int
    color_space: str
    color_transfer: str
    color_primaries: str
    color_range: str
    sample_aspect_ratio: str
    has_audio: bool

    @property
    def color_tags(self) -> dict[str, str]:
        return {"color_space": self.color_space, "color_transfer": self.color_transfer,
                "color_primaries": self.color_primaries}


def _count_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    container.seek(0)
    return sum(1 for packet in container.demux(stream) if packet.size > 0)


def probe(path: Path | str, *, max_dimension: int = MAX_DIMENSION) -> MediaFacts:
    """Read a video's facts; INVALID_ARGUMENT for anything that is not a usable video."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidInput(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if ctx.width <= 0 or ctx.height <= 0:
                raise InvalidInput(f"{path.name}: video stream has no dimensions")
            if ctx.width > max_dimension or ctx.height > max_dimension:
                raise InvalidInput(f"{path.name}: {ctx.width}x{ctx.height} exceeds {max_dimension} px")
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate or rate <= 0:
                raise InvalidInput(f"{path.name}: unknown frame rate")
            frames = stream.frames or _count_frames(container, stream)
            if frames <= 0:
                raise InvalidInput(f"{path.name} has no video frames")
            if stream.duration is not None and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = frames / float(rate)
            sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
            return MediaFacts(
                path=path, width=ctx.width, height=ctx.height, fps=Fraction(rate), frame_count=frames,
                duration=duration, codec=codec_family(ctx.name), profile=stream.profile or "",
                pix_fmt=ctx.format.name if ctx.format else "", container=container.format.name,
                size_bytes=path.stat().st_size, bit_rate=int(stream.bit_rate or container.bit_rate or 0),
                color_space=_SPACE.get(ctx.colorspace, ""), color_transfer=_TRANSFER.get(ctx.color_trc, ""),
                color_primaries=_PRIMARIES.get(ctx.color_primaries, ""), color_range=_RANGE.get(ctx.color_range, ""),
                sample_aspect_ratio=f"{sar.numerator}:{sar.denominator}" if sar else "",
                has_audio=bool(container.streams.audio))
    except av.FFmpegError as exc:
        raise InvalidInput(f"{path.name} is not a readable video: {exc}") from exc
