"""The competition service under real uvicorn on loopback (started the way the sandbox starts it, on a
socket bound to a free port), with input and output roots in a temporary directory, and the media
helpers the tests check outputs with: pyav for what ffprobe reports, ffmpeg for the scorer's audio hash."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import httpx
import pytest

from mesh.ffmpeg import ffmpeg_exe, run_ffmpeg_sync

REPO = Path(__file__).resolve().parents[2]


def make_clip(path: Path, *, seconds: float, size: str = "320x240", rate: int = 24, audio: bool = True,
              sar: str = "1", noise: int = 0, crf: int = 18) -> Path:
    """An H.264 test clip from lavfi's testsrc2 (optionally grainy), with a sine tone in AAC when `audio`."""
    video = f"testsrc2=s={size}:r={rate}:d={seconds}"
    if noise:
        video += f",noise=alls={noise}:allf=t+u:all_seed=7"
    video += f",format=yuv420p,setsar={sar}"
    args = ["-y", "-loglevel", "error", "-f", "lavfi", "-i", video]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-map", "0:v"]
    if audio:
        args += ["-map", "1:a", "-c:a", "aac", "-b:a", "96k"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-threads", "2", str(path)]
    run_ffmpeg_sync(args, timeout=120)
    return path


def media(path: Path) -> dict:
    """What the scorer reads with ffprobe (-count_frames), read through the same libavformat."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        return {"codec": stream.codec_context.codec.canonical_name, "container": container.format.name,
                "width": stream.codec_context.width, "height": stream.codec_context.height,
                "pix_fmt": stream.codec_context.format.name, "frames": frames,
                "duration": container.duration / 1e6, "sar": f"{sar.numerator}:{sar.denominator}" if sar else "",
                "bit_rate": stream.bit_rate or container.bit_rate, "audio_streams": len(container.streams.audio),
                "size": path.stat().st_size, "fps": Fraction(stream.average_rate)}


def audio_hash(path: Path) -> str:
    """The scorer's audio fingerprint, with its exact command: sha256 over the audio packets."""
    result = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy", "-f",
                             "hash", "-hash", "sha256", "-"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def assert_valid(source, output, *, target_bitrate: int | None = None) -> None:
    """The scorer's checks, in its order, on what ffprobe would report."""
    src, out = media(source), media(output)
    assert out["audio_streams"] == src["audio_streams"]
    if src["audio_streams"]:
        assert audio_hash(output) == audio_hash(source)
    if target_bitrate is not None:
        assert 0 < out["bit_rate"] <= int(target_bitrate * 1.10)
    assert out["size"] < src["size"]
    assert out["codec"] == "av1"
    assert "mp4" in out["container"]
    assert (out["width"], out["height"]) == (src["width"], src["height"])
    assert abs(out["duration"] - src["duration"]) <= max(0.5, 0.01 * src["duration"])
    assert out["pix_fmt"].startswith("yuv")
    assert out["sar"] == src["sar"]
    assert abs(out["frames"] - src["frames"]) <= max(1, round(0.01 * src["frames"]))
    assert src["size"] / out["size"] >= 1.25


class Service:
    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.inputs = root / "evaluation-inputs"
        self.outputs = root / "output"
        self.outside = root / "outside"
        self.log = root / "service.log"

    def compress(self, body: object, *, raw: bytes | None = None) -> httpx.Response:
        content = raw if raw is not None else httpx.Request("POST", "/", json=body).content
        return httpx.post(f"{self.url}/compress", content=content, timeout=600,
                          headers={"content-type": "application/json"})

    def files_under_outputs(self) -> set[Path]:
        return {path for path in self.outputs.rglob("*") if not path.is_dir()}


@contextlib.contextmanager
def running_service(root: Path, **settings: str) -> Iterator[Service]:
    """`python -m uvicorn competition_app.app:app` on a loopback socket it inherits (no port race), with
    roots under `root` and COMPETITION_<KEY> = value for each of `settings`."""
    for folder in ("evaluation-inputs/inputs", "output/evaluations", "outside", "scratch"):
        (root / folder).mkdir(parents=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(REPO), COMPETITION_INPUT_ROOT=str(root / "evaluation-inputs"),
               COMPETITION_OUTPUT_ROOT=str(root / "output"), COMPETITION_SCRATCH_DIR=str(root / "scratch"),
               COMPETITION_CPUS="2", COMPETITION_ALLOW_HARDWARE="false")
    env.update({f"COMPETITION_{key.upper()}": value for key, value in settings.items()})
    log = open(root / "service.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "competition_app.app:app", "--fd", str(sock.fileno())],
                            cwd=REPO, env=env, pass_fds=[sock.fileno()], stdout=log, stderr=subprocess.STDOUT)
    sock.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (root / "service.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not answer /health within 60 s"
            time.sleep(0.2)
        yield Service(url, root)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("competition")) as running:
        yield running
