"""The compressor's gRPC-free job runner: the shared media-job lifecycle (mesh.jobs) around the core.

The call's deadline is the job's: the queue wait and the download come out of it, the core gets what is
left less the time the upload will need, and an output that would fail a validator gate is never uploaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from compressor_svc.compressor import compress
from compressor_svc.config import CompressorSettings
from compressor_svc.job import CompressJob, CompressOutcome
from mesh.batches import BatchRef
from mesh.codecs import CODEC_FAMILIES, select_encoder
from mesh.errors import DeadlineTooShort, DependencyUnavailable, GateFailed
from mesh.ffmpeg import encoders
from mesh.gates import all_passed, failures
from mesh.jobs import JobPlan, JobQueue, JobResult, MediaJobs, Processed, Step
from mesh.media import MediaFacts
from mesh.progress import ProgressFn
from mesh.publish import DeletionScheduler, Publisher
from mesh.scheduling import ORGANIC, SYNTHETIC
from mesh.storage import ObjectStore

log = logging.getLogger(__name__)

REQUIRED_ENCODERS = ("libsvtav1", "libx265", "libx264", "libvpx-vp9")

CompressResult = JobResult[CompressOutcome]


@dataclass(frozen=True)
class CompressTask:
    source_url: str
    job: CompressJob
    job_id: str = ""
    budget_seconds: float | None = None  # None: the service's default budget
    batch: BatchRef = BatchRef()
    priority: str = SYNTHETIC
    operator_seed: str = ""  # the miner's hotkey: its operating point


class CompressService:
    """Runs compression jobs end to end; every failure is a MeshError with the status the caller should see."""

    def __init__(self, settings: CompressorSettings, store: ObjectStore, janitor: DeletionScheduler) -> None:
        self.settings = settings
        self.store = store
        self.publisher = Publisher(store, janitor, presign_seconds=settings.presign_seconds,
                                   delete_after_seconds=settings.delete_after_seconds)
        self.queue = JobQueue("compressor", settings.concurrency, settings.queue_size)
        self.jobs = MediaJobs(self.queue, settings.source_limits(settings.max_source_seconds), self.publisher,
                              key_prefix=settings.key_prefix, work_dir=settings.work_dir)

    async def start(self) -> None:
        """Check ffmpeg's encoders (NVENC probed once, here) and the bucket."""
        missing = [name for name in REQUIRED_ENCODERS if name not in await asyncio.to_thread(encoders)]
        if missing:
            raise DependencyUnavailable(f"ffmpeg lacks the encoders {', '.join(missing)}")
        hardware = self.settings.allow_hardware_encoders
        chosen = [await asyncio.to_thread(select_encoder, codec, allow_hardware=hardware)
                  for codec in CODEC_FAMILIES]
        log.info("encoders", extra={"encoders": {encoder.codec: encoder.name for encoder in chosen}})
        await asyncio.to_thread(self.store.ensure_bucket)

    async def close(self) -> None:
        await self.publisher.close()

    async def compress(self, task: CompressTask, on_progress: ProgressFn | None = None) -> CompressResult:
        job = task.job.validated()
        s = self.settings
        budget = task.budget_seconds or s.default_budget_seconds
        if task.priority == ORGANIC:
            budget = min(budget, s.organic_budget_seconds)
        deadline = time.monotonic() + budget
        options = s.compress_options(operator_seed=task.operator_seed)

        async def process(source: MediaFacts, step: Step) -> Processed[CompressOutcome]:
            """The core gets the item's share of the synapse's time, less what its upload will take."""
            upload = s.deadline_reserve_seconds + source.size_bytes / (s.upload_mbytes_per_second * 1e6)
            seconds = (step.seconds if step.seconds is not None else deadline - time.monotonic()) - upload
            if seconds <= 1.0:
                raise DeadlineTooShort(f"only {seconds + upload:.1f} s left for this item after the download")
            outcome = await compress(source.path, step.workdir / "work", job, options, budget_seconds=seconds,
                                     reporter=step.reporter, facts=source)
            log.info("compressed", extra={
                "job_id": task.job_id, "encoder": outcome.encoder, "preset": outcome.preset,
                "vmaf_neg": round(outcome.vmaf_neg, 3), "ratio": round(outcome.ratio, 3),
                "score": round(outcome.predicted_score, 4), "scenes": outcome.scene_count,
                "probes": outcome.probes, "meets_threshold": outcome.meets_threshold})
            if not all_passed(outcome.gates):
                raise GateFailed(f"the best output fails the validator's gates and would score zero: "
                                 f"{failures(outcome.gates)}; nothing was uploaded")
            return Processed(outcome.output, "output.mp4", outcome)

        if deadline - time.monotonic() <= s.deadline_reserve_seconds:
            raise DeadlineTooShort("the call's deadline leaves no time to compress")
        plan = JobPlan(task.batch, task.priority, deadline)  # each item keeps its own reserve (process)
        return await self.jobs.run(task.source_url, task.job_id, process, on_progress=on_progress, plan=plan)
