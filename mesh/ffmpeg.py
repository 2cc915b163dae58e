"""The one ffmpeg every service uses: imageio-ffmpeg's static build (libvmaf, SVT-AV1, x265, NVENC).

Debian's ffmpeg has no libvmaf, so nothing here looks at PATH. Processes run in their own session so a
cancelled job kills ffmpeg and anything it started, and a paused lane (`mesh.lanes`) stops them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import imageio_ffmpeg

from mesh import lanes


class FfmpegError(RuntimeError):
    """ffmpeg exited non-zero; the message ends with the tail of its stderr."""


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the static ffmpeg binary shipped by imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg build has (not whether a GPU for them is present)."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True,
                         check=True).stdout
    return frozenset(m.group(1) for m in re.finditer(r"^\s[VAS][\w.]{5}\s+(\S+)", out, re.MULTILINE))


@functools.cache
def nvenc_available(encoder: str) -> bool:
    """True when `encoder` (e.g. hevc_nvenc) can really open on this machine: detect, never assume."""
    if encoder not in encoders():
        return False
    probe = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=black:s=256x256:d=0.1",
         "-frames:v", "1", "-c:v", encoder, "-f", "null", "-"], capture_output=True, timeout=30)
    return probe.returncode == 0


def _kill_group(proc: asyncio.subprocess.Process | subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def run_ffmpeg(args: list[str], *, timeout: float | None = None) -> str:
    """Run ffmpeg with `args` (no shell); return stderr. Cancellation or timeout kills the process group."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-hide_banner", "-nostdin", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        with lanes.tracked(proc.pid):
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        _kill_group(proc)
        await proc.wait()
        raise
    text = stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise FfmpegError(f"ffmpeg exited with {proc.returncode}: {text[-1500:]}")
    return text


async def encode_side_by_side(runs: list[list[str]], parts: list[Path], dest: Path, *, deadline: float) -> None:
    """Run the ffmpeg `runs` (each writing its entry of `parts`) at once, then join `parts` into `dest` by
    stream copy, all by `deadline` (time.monotonic()); one failing (or cancellation) stops the others. The
    parts are removed either way."""
    encodes = [asyncio.create_task(run_ffmpeg(args, timeout=deadline - time.monotonic())) for args in runs]
    try:
        await asyncio.gather(*encodes)
        await join_video(parts, dest, timeout=deadline - time.monotonic())
    except BaseException:
        for encode in encodes:
            encode.cancel()
        await asyncio.gather(*encodes, return_exceptions=True)
        raise
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


async def join_video(parts: list[Path], dest: Path, *, timeout: float) -> Path:
    """The video of `parts`, one after the other, as one MP4, by stream copy (no re-encode)."""
    if len(parts) == 1:
        await run_ffmpeg(["-y", "-loglevel", "error", "-i", str(parts[0]), "-map", "0:v:0", "-c", "copy",
                          "-movflags", "+faststart", str(dest)], timeout=timeout)
        return dest
    listing = dest.with_suffix(".txt")
    quoted = (str(part.resolve()).replace("'", "'\\''") for part in parts)  # the concat list's quoting
    listing.write_text("".join(f"file '{path}'\n" for path in quoted), encoding="utf-8")
    try:
        await run_ffmpeg(["-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                          "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", str(dest)], timeout=timeout)
    finally:
        listing.unlink(missing_ok=True)
    return dest


def run_ffmpeg_sync(args: list[str], *, timeout: float | None = None) -> str:
    """Blocking variant of `run_ffmpeg` for CLI and test helpers."""
    proc = subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    text = stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise FfmpegError(f"ffmpeg exited with {proc.returncode}: {text[-1500:]}")
    return text
