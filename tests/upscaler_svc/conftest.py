"""Fixtures for the upscaler tests: converted weights in a temp cache, one loaded CPU engine, tiny clips."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from mesh.ffmpeg import ffmpeg_exe, run_ffmpeg_sync
from tests.conftest import cut_clip
from upscaler_svc.cpu_engine import CpuEngine
from upscaler_svc.engine import EngineOptions
from upscaler_svc.weights import WeightCache

CLIP_29_97 = "synth_sd_480x360_29.97fps.mp4"
CLIP_14_985 = "synth_sd_480x360_14.99fps.mp4"
CLIP_25 = "synth_sd_480x360_25fps.mp4"
CLIP_PORTRAIT = "synth_portrait_406x720_30fps.mp4"
CLIP_BUSY = "synth_busy_480x360_30fps.mp4"


@pytest.fixture(scope="session")
def weight_cache(tmp_path_factory) -> WeightCache:
    return WeightCache(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def anime_checkpoint(weight_cache):
    return weight_cache.load("realesr-animevideov3")


@pytest.fixture(scope="session")
def cpu_engine(anime_checkpoint) -> CpuEngine:
    """realesr-animevideov3 on torch (no calibration, to keep the suite fast)."""
    engine = CpuEngine(anime_checkpoint, EngineOptions(cpu_backend="torch"))
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tiny_clips(clips_dir, tmp_path_factory):
    """Cut (and cache for the session) a few-frame, small-width copy of a development clip."""
    folder = tmp_path_factory.mktemp("clips")
    made: dict[tuple, Path] = {}

    def make(name: str, *, frames: int = 4, width: int = 64) -> Path:
        key = (name, frames, width)
        if key not in made:
            made[key] = cut_clip(clips_dir / name, folder / f"{Path(name).stem}-{frames}f-{width}w.mp4",
                                 frames=frames, width=width)
        return made[key]

    return make


def encode_clip(source: Path, dest: Path, *args: str) -> Path:
    """Re-encode `source` with extra ffmpeg output arguments (colour tags, odd sizes, bitrates)."""
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-i", str(source), "-an", *args, str(dest)], timeout=120)
    return dest


def ffmpeg_children() -> list[int]:
    """PIDs of live ffmpeg processes started by this test process (any depth of session)."""
    exe = os.path.realpath(ffmpeg_exe())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        state = next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))
        if ppid == os.getpid() and state != "Z" and os.path.realpath(cmdline) == exe:
            found.append(int(entry.name))
    return found


def truncated_clip(tiny_clips, dest: Path) -> Path:
    """A faststart MP4 cut short: its index still promises 8 frames, only the first few decode."""
    whole = encode_clip(tiny_clips(CLIP_BUSY, frames=8, width=64), dest.with_name("whole.mp4"),
                        "-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart")
    data = whole.read_bytes()
    dest.write_bytes(data[:int(len(data) * 0.6)])
    return dest


def lavfi_clip(dest: Path, graph: str, *args: str) -> Path:
    """A synthetic clip from an ffmpeg lavfi source graph (e.g. "color=gray:s=4200x16:r=30")."""
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", graph, *args, str(dest)], timeout=120)
    return dest


@pytest.fixture()
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a fresh directory: yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
