"""The service's gRPC-free job runner: queue → fetch → upscale → verify → upload → presign → schedule.

`UpscaleService` owns the loaded engines, the bounded job queue and the storage and janitor clients. The
servicer adapts protos to it; tests drive it directly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mesh.errors import Busy, InvalidInput
from mesh.janitor_client import JanitorClient
from mesh.media import fetch
from mesh.storage import ObjectStore, PresignedUrl, StorageError
from upscaler_svc.config import UpscalerSettings
from upscaler_svc.encode import choose_encoder
from upscaler_svc.engine import Engine, create_engine
from upscaler_svc.pipeline import ProgressFn, ProgressReporter, UpscaleOutcome, UpscalePipeline
from upscaler_svc.weights import NCNN_MODELS, WeightCache

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
DELETE_GRACE_SECONDS = 600


@dataclass(frozen=True)
class UpscaleTask:
    source_url: str
    scale: int
    codec: str = "hevc"
    model: str = ""
    job_id: str = ""


@dataclass
class UpscaleResult:
    outcome: UpscaleOutcome
    model: str
    bucket: str
    key: str
    url: PresignedUrl
    delete_at: dt.datetime
    timings: dict[str, float] = field(default_factory=dict)


class JobQueue:
    """At most `concurrency` jobs run; at most `queue_size` more wait; the next one is refused (Busy)."""

    def __init__(self, concurrency: int, queue_size: int) -> None:
        self.capacity = concurrency + queue_size
        self.pending = 0
        self._running = asyncio.Semaphore(concurrency)

    def check_room(self) -> None:
        if self.pending >= self.capacity:
            raise Busy(f"upscaler queue is full ({self.pending} jobs queued or running)")

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.check_room()
        self.pending += 1
        try:
            async with self._running:
                yield
        finally:
            self.pending -= 1


class Engines:
    """One loaded engine per model, loaded on first use (the default one at start)."""

    def __init__(self, settings: UpscalerSettings) -> None:
        self.settings = settings
        self.cache = WeightCache(settings.cache_dir)
        self._engines: dict[str, Engine] = {}
        self._lock = asyncio.Lock()

    async def get(self, model: str) -> Engine:
        async with self._lock:
            if model not in self._engines:
                self._engines[model] = await asyncio.to_thread(self._load, model)
            return self._engines[model]

    def _load(self, model: str) -> Engine:
        started = time.monotonic()
        engine = create_engine(self.settings.engine, self.cache.load(model), self.settings.engine_options())
        engine.load()
        log.info("engine loaded", extra={"model": model, "engine": engine.describe(),
                                         "seconds": round(time.monotonic() - started, 2)})
        return engine

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()


class UpscaleService:
    """Runs upscale jobs end to end; every failure is a MeshError with the status the caller should see."""

    def __init__(self, settings: UpscalerSettings, store: ObjectStore, janitor: JanitorClient) -> None:
        self.settings = settings
        self.store = store
        self.janitor = janitor
        self.engines = Engines(settings)
        self.queue = JobQueue(settings.concurrency, settings.queue_size)
        self._discards: set[asyncio.Future] = set()

    async def start(self) -> None:
        """Load the default model and detect the encoders; the service is ready when this returns."""
        await self.engines.get(self.settings.model)
        for codec in ("hevc", "av1"):
            encoder = await asyncio.to_thread(choose_encoder, codec, self.settings.use_nvenc)
            log.info("encoder chosen", extra={"codec": codec, "encoder": encoder})

    async def close(self) -> None:
        await asyncio.gather(*self._discards, return_exceptions=True)
        self.engines.close()
        await self.janitor.close()

    def _model(self, requested: str) -> str:
        if not requested:
            return self.settings.model
        if requested not in NCNN_MODELS:
            raise InvalidInput(f"unknown model {requested!r}: use one of {sorted(NCNN_MODELS)} "
                               "(model files are accepted only from the service's configuration)")
        return requested

    async def upscale(self, task: UpscaleTask, on_progress: ProgressFn | None = None) -> UpscaleResult:
        job_id = task.job_id or secrets.token_hex(8)
        if not JOB_ID.match(job_id):
            raise InvalidInput("job_id may only hold letters, digits, '.', '_' and '-' (at most 64)")
        model = self._model(task.model)
        self.queue.check_room()  # refused before any progress event is sent
        async with ProgressReporter(on_progress).emitting() as reporter:
            reporter.stage("queued", message=f"{self.queue.pending} job(s) ahead or running")
            async with self.queue.slot():
                return await self._run(task, job_id, model, reporter)

    async def _run(self, task: UpscaleTask, job_id: str, model: str,
                   reporter: ProgressReporter) -> UpscaleResult:
        engine = await self.engines.get(model)
        with tempfile.TemporaryDirectory(prefix=f"upscale-{job_id}-", dir=self.settings.work_dir) as work:
            source = Path(work) / "source.mp4"
            reporter.stage("fetch", unit="bytes")

            def fetched(received: int, declared: int) -> None:
                reporter.done, reporter.total = received, declared

            await fetch(task.source_url, source, max_bytes=self.settings.max_source_bytes,
                        timeout=self.settings.fetch_timeout_seconds,
                        allow_private=self.settings.allow_private_sources, on_progress=fetched)
            pipeline = UpscalePipeline(engine, encoder_settings=self.settings.encoder_settings(),
                                       limits=self.settings.limits())
            output = Path(work) / f"{job_id}_x{task.scale}.mp4"
            outcome = await pipeline.run(source, output, scale=task.scale, codec=task.codec,
                                         reporter=reporter)
            key = f"{self.settings.key_prefix}/{job_id}-{secrets.token_hex(4)}_x{task.scale}.mp4"
            reporter.stage("upload", total=outcome.output.size_bytes, unit="bytes")
            await self._upload(output, key)
            reporter.done = outcome.output.size_bytes
        return await self._publish(outcome, model, key, reporter)

    async def _upload(self, path: Path, key: str) -> None:
        """Upload; if the job is cancelled meanwhile, return at once and delete the object once the upload
        thread (which cannot be interrupted) is done, so a cancelled job leaves nothing behind."""
        upload = asyncio.ensure_future(asyncio.to_thread(self.store.upload, path, key))
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            discard = asyncio.ensure_future(self._discard_after(upload, key))
            self._discards.add(discard)
            discard.add_done_callback(self._discards.discard)
            raise

    async def _discard_after(self, upload: asyncio.Future, key: str) -> None:
        await asyncio.gather(upload, return_exceptions=True)
        try:
            await asyncio.to_thread(self.store.delete, key)
        except StorageError as exc:
            log.warning("could not delete a cancelled job's upload", extra={"key": key, "error": str(exc)})

    async def _publish(self, outcome: UpscaleOutcome, model: str, key: str,
                       reporter: ProgressReporter) -> UpscaleResult:
        """Presign and schedule the deletion; on failure remove the object so nothing is left unowned."""
        lifetime = self.settings.presign_seconds or self.store.settings.presign_seconds
        delay = self.settings.delete_after_seconds or lifetime + DELETE_GRACE_SECONDS
        try:
            url = await asyncio.to_thread(self.store.presign, key, lifetime)
            reporter.stage("schedule")
            delete_at = await self.janitor.schedule(self.store.bucket, key, delay)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.store.delete, key))
            raise
        reporter.finish()
        return UpscaleResult(outcome, model, self.store.bucket, key, url, delete_at, reporter.timings)
