"""Fetching and probing source videos, shared by the upscaler, the compressor and the CLI.

`fetch` downloads a validator's presigned URL with a size cap, a total timeout and an SSRF guard that
refuses loopback, private, link-local and other non-public addresses (on every redirect hop) unless the
caller allows local sources. `probe` reads the facts the validator reads with ffprobe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import av
import httpx

from mesh.errors import DependencyUnavailable, InvalidInput, SourceNotFound, SourceRefused
from mesh.v1 import common_pb2

MAX_REDIRECTS = 5
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

    def to_proto(self) -> common_pb2.MediaInfo:
        return common_pb2.MediaInfo(
            width=self.width, height=self.height, fps_num=self.fps.numerator, fps_den=self.fps.denominator,
            frame_count=self.frame_count, duration_seconds=self.duration, codec=self.codec, profile=self.profile,
            pix_fmt=self.pix_fmt, container=self.container, size_bytes=self.size_bytes, bit_rate=self.bit_rate,
            color_space=self.color_space, color_transfer=self.color_transfer,
            color_primaries=self.color_primaries, sample_aspect_ratio=self.sample_aspect_ratio)


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


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _check_host(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"source URL must be http(s), got {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise InvalidInput("source URL has no host")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443,
                                                             type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidInput(f"source host {parts.hostname!r} does not resolve") from exc
    refused = sorted({info[4][0] for info in infos if not _is_public(info[4][0])})
    if refused:
        raise SourceRefused(f"source host {parts.hostname!r} resolves to non-public address {refused[0]}; "
                            "local sources are disabled")


async def fetch(url: str, dest: Path, *, max_bytes: int, timeout: float, allow_private: bool = False,
                on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Download `url` to `dest`, following redirects; every hop is checked against the SSRF guard."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        async with asyncio.timeout(timeout):
            async with httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(30.0)) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    await _check_host(url, allow_private)
                    async with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        _raise_for_status(response)
                        declared = int(response.headers.get("content-length") or 0)
                        if declared > max_bytes:
                            raise InvalidInput(f"source is {declared} bytes, over the {max_bytes}-byte cap")
                        await _stream_to(response, dest, max_bytes, declared, on_progress)
                        return dest
                raise InvalidInput(f"source URL redirected more than {MAX_REDIRECTS} times")
    except TimeoutError:
        dest.unlink(missing_ok=True)
        raise DependencyUnavailable(f"source download did not finish within {timeout:.0f} s") from None
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise DependencyUnavailable(f"source download failed: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _raise_for_status(response: httpx.Response) -> None:
    code = response.status_code
    if code in (404, 410):
        raise SourceNotFound(f"source URL answered HTTP {code}")
    if 400 <= code < 500:
        raise InvalidInput(f"source URL answered HTTP {code}")
    if code >= 500:
        raise DependencyUnavailable(f"source URL answered HTTP {code}")


async def _stream_to(response: httpx.Response, dest: Path, max_bytes: int, declared: int,
                     on_progress: Callable[[int, int], None] | None) -> None:
    received = 0
    with open(dest, "wb") as out:
        async for chunk in response.aiter_bytes(1 << 20):
            received += len(chunk)
            if received > max_bytes:
                raise InvalidInput(f"source is over the {max_bytes}-byte cap")
            out.write(chunk)
            if on_progress is not None:
                on_progress(received, declared)
        out.flush()
        os.fsync(out.fileno())
