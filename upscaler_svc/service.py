"""The upscaler's gRPC-free job runner: the shared media-job lifecycle (mesh.jobs) around the pipeline.

`UpscaleService` owns the loaded engines; `mesh.jobs.MediaJobs` does the queue, fetch, publish and
progress. The servicer adapts protos to it; the CLI and tests drive it directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from mesh.batches import BatchRef
from mesh.errors import InvalidInput
from mesh.jobs import JobPlan, JobQueue, JobResult, MediaJobs, Processed, Step
from mesh.media import MediaFacts
from mesh.progress import ProgressFn
from mesh.publish import DeletionScheduler, Publisher
from mesh.scheduling import SYNTHETIC
from mesh.storage import ObjectStore
from upscaler_svc.config import UpscalerSettings
from upscaler_svc.encode import choose_encoder
from upscaler_svc.engine import Engine
from upscaler_svc.engine_registry import create_engine
from upscaler_svc.pipeline import UpscaleOutcome, UpscalePipeline
from upscaler_svc.weights import NCNN_MODELS, WeightCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpscaleTask:
    source_url: str
    scale: int
    codec: str = "hevc"
    model: str = ""
    job_id: str = ""
    budget_seconds: float | None = None  # the call's time left; bounds the queue wait and the download
    batch: BatchRef = BatchRef()
    priority: str = SYNTHETIC


@dataclass(frozen=True)
class Upscaled:
    """The service's outcome: the pipeline's facts and the model that made them."""

    pipeline: UpscaleOutcome
    model: str


UpscaleResult = JobResult[Upscaled]


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

    def __init__(self, settings: UpscalerSettings, store: ObjectStore, janitor: DeletionScheduler) -> None:
        self.settings = settings
        self.engines = Engines(settings)
        self.publisher = Publisher(store, janitor, presign_seconds=settings.presign_seconds,
                                   delete_after_seconds=settings.delete_after_seconds)
        self.queue = JobQueue("upscaler", settings.concurrency, settings.queue_size)
        self.jobs = MediaJobs(self.queue, settings.source_limits(), self.publisher,
                              key_prefix=settings.key_prefix, work_dir=settings.work_dir)

    async def start(self) -> None:
        """Load the default model and detect the encoders; the service is ready when this returns."""
        await self.engines.get(self.settings.model)
        for codec in ("hevc", "av1"):
            encoder = await asyncio.to_thread(choose_encoder, codec, self.settings.use_nvenc)
            log.info("encoder chosen", extra={"codec": codec, "encoder": encoder.name})

    async def close(self) -> None:
        await self.publisher.close()
        self.engines.close()

    def _model(self, requested: str) -> str:
        if not requested:
            return self.settings.model
        if requested not in NCNN_MODELS:
            raise InvalidInput(f"unknown model {requested!r}: use one of {sorted(NCNN_MODELS)} "
                               "(model files are accepted only from the service's configuration)")
        return requested

    async def upscale(self, task: UpscaleTask, on_progress: ProgressFn | None = None) -> UpscaleResult:
        model = self._model(task.model)

        async def process(source: MediaFacts, step: Step) -> Processed[Upscaled]:
            """The pipeline runs at the engine's speed: the item's time share does not change its work."""
            engine = await self.engines.get(model)
            pipeline = UpscalePipeline(engine, encoder_settings=self.settings.encoder_settings(),
                                       limits=self.settings.limits())
            output = step.workdir / f"x{task.scale}.mp4"
            outcome = await pipeline.run(source.path, output, scale=task.scale, codec=task.codec, source=source,
                                         reporter=step.reporter)
            return Processed(output, f"x{task.scale}.mp4", Upscaled(outcome, model))

        deadline = None if task.budget_seconds is None else time.monotonic() + task.budget_seconds
        plan = JobPlan(task.batch, task.priority, deadline)
        return await self.jobs.run(task.source_url, task.job_id, process, on_progress=on_progress, plan=plan)
