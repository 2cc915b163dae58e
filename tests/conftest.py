"""Shared fixtures: real Valkey and SeaweedFS S3 on loopback, and the development clips."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import redis

from mesh.config import S3Settings
from mesh.embedded import EmbeddedS3, EmbeddedValkey
from mesh.ffmpeg import run_ffmpeg_sync
from mesh.storage import ObjectStore

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIPS_DIR = Path(os.environ.get("VIDAIO_CLIPS_DIR", REPO_ROOT.parent / "shared" / "data" / "clips"))


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    if not CLIPS_DIR.is_dir():
        pytest.fail(f"development clips not found at {CLIPS_DIR} (set VIDAIO_CLIPS_DIR)")
    return CLIPS_DIR


@pytest.fixture(scope="session")
def valkey():
    with EmbeddedValkey() as server:
        yield server


@pytest.fixture()
def redis_url(valkey) -> str:
    """A Redis URL on the embedded Valkey, emptied before each test."""
    client = redis.Redis.from_url(valkey.url)
    client.flushall()
    client.close()
    return valkey.url


@pytest.fixture(scope="session")
def s3_server():
    with EmbeddedS3() as server:
        yield server


@pytest.fixture()
def s3_settings(s3_server) -> S3Settings:
    """Settings for a fresh bucket on the embedded S3 endpoint."""
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    settings = S3Settings(endpoint=s3_server.endpoint, access_key=s3_server.access_key,
                          secret_key=s3_server.secret_key, bucket=bucket, secure=False)
    ObjectStore(settings).ensure_bucket()
    return settings


def cut_clip(source: Path, dest: Path, *, frames: int, width: int | None = None, fps: str | None = None,
             codec: str = "libx264") -> Path:
    """A short validator-style H.264 cut of a real clip (no audio), optionally resized / re-timed."""
    filters = []
    if fps:
        filters.append(f"fps={fps}")
    if width:
        filters.append(f"scale={width}:-2:flags=bicubic")
    args = ["-y", "-loglevel", "error", "-i", str(source), "-an", "-frames:v", str(frames)]
    if filters:
        args += ["-vf", ",".join(filters)]
    args += ["-c:v", codec, "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(dest)]
    run_ffmpeg_sync(args, timeout=120)
    return dest
