"""Shared fixtures: real Valkey and SeaweedFS S3 on loopback, and the (synthetic) development clips."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from pathlib import Path

import pytest
import redis

from janitor_svc.config import JanitorSettings
from janitor_svc.server import JanitorServer
from mesh.config import RedisSettings, S3Settings
from mesh.embedded import EmbeddedS3, EmbeddedValkey
from mesh.ffmpeg import run_ffmpeg_sync
from mesh.storage import ObjectStore
from vidaio_cli.synthetic import TEST_CLIPS, make_clips

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory) -> Path:
    """The development clips the tests cut from: synthetic ones (vidaio_cli.synthetic.TEST_CLIPS, the names,
    sizes and rates the tests use), made once per session, so the suite needs nothing outside the repo."""
    folder = tmp_path_factory.mktemp("synthetic-clips")
    make_clips(folder, TEST_CLIPS)
    return folder


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
    """A short validator-style H.264 cut of a clip (no audio), optionally resized / re-timed."""
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


class JanitorThread:
    """A real janitor server (gRPC + deletion loop) on its own event loop in a background thread, so
    sync and async tests alike can call it over loopback."""

    def __init__(self, settings: JanitorSettings, redis_url: str, s3_settings: S3Settings) -> None:
        self._args = (settings, RedisSettings(url=redis_url), s3_settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="janitor-server", daemon=True)
        self.server: JanitorServer | None = None
        self.port = 0

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> int:
        self.server = JanitorServer(*self._args)
        return await self.server.start()

    def start(self) -> str:
        self._thread.start()
        self.port = self._call(self._start())
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        try:
            if self.server is not None:
                self._call(self.server.stop(grace=1))
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def janitor_test_settings(**overrides: object) -> JanitorSettings:
    """Loopback, a free port, and short leases / polls so tests see deletions within a second."""
    values: dict[str, object] = dict(host="127.0.0.1", port=0, drain_seconds=1, lease_seconds=3,
                                     idle_poll_seconds=0.1, health_interval_seconds=0.5, backoff_seconds=0.2,
                                     backoff_max_seconds=1, temp_dirs=[])
    values.update(overrides)
    return JanitorSettings(**values)


@pytest.fixture()
def janitor_address(redis_url, s3_settings) -> str:
    """"127.0.0.1:PORT" of a real janitor (gRPC + deletion worker) on the embedded Valkey and S3;
    it deletes from `s3_settings.bucket` by default and is SERVING when this returns."""
    janitor = JanitorThread(janitor_test_settings(), redis_url, s3_settings)
    address = janitor.start()
    try:
        yield address
    finally:
        janitor.stop()
