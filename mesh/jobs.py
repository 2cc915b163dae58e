"""The one lifecycle of a media job (upscale, compress), free of gRPC.

admit (bounded queue, synthetic before organic) → work directory → fetch and probe the source → the
service's own processing (with its share of the synapse's time) → outputs of one synapse made to differ
in size → publish (upload, presign, schedule the deletion) → result, with progress and stage timings all
along. A service supplies only its processing step; `MediaJobs.run` does the rest the same way for both.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from mesh.batches import BatchPlanner, BatchRef
from mesh.errors import Busy, DeadlineTooShort, InvalidInput
from mesh.lanes import in_lane
from mesh.media import MediaFacts
from mesh.progress import ProgressFn, ProgressReporter
from mesh.publish import Publisher, StoredResult
from mesh.scheduling import ORGANIC, SYNTHETIC, LaneSlots
from mesh.sources import SourceLimits, fetch_source

JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

OutcomeT = TypeVar("OutcomeT")


def job_id_or_new(job_id: str) -> str:
    """The caller's job id (it names temp dirs and object keys, so it is checked), or a fresh one."""
    if not job_id:
        return secrets.token_hex(8)
    if not JOB_ID.match(job_id):
        raise InvalidInput("job_id may only hold letters, digits, '.', '_' and '-' (1 to 64 of them)")
    return job_id


class JobQueue:
    """At most `concurrency` synthetic jobs run, and as many organic ones beside them; at most `queue_size`
    more wait; the next one is refused (Busy). Organic jobs start only while no synthetic job waits or runs,
    and are paused (their ffmpeg processes stopped) while one does."""

    def __init__(self, service: str, concurrency: int, queue_size: int) -> None:
        self.service = service
        self.concurrency = concurrency
        self.capacity = concurrency + queue_size
        self.pending = 0
        self._lanes = LaneSlots(concurrency)

    def check_room(self) -> None:
        if self.pending >= self.capacity:
            raise Busy(f"{self.service} queue is full ({self.pending} jobs queued or running); "
                       "retry later or on another replica")

    @contextlib.asynccontextmanager
    async def slot(self, priority: str = SYNTHETIC) -> AsyncIterator[None]:
        """Hold a place in the queue for the block, and a running slot of `priority`'s lane once one is free."""
        self.check_room()
        self.pending += 1
        try:
            async with self._lanes.slot(priority):
                yield
        finally:
            self.pending -= 1


@dataclass(frozen=True)
class Processed(Generic[OutcomeT]):
    """What a service's processing step made: the file to publish, the key's file name, its own outcome."""

    output: Path
    name: str
    outcome: OutcomeT


@dataclass(frozen=True)
class JobResult(Generic[OutcomeT]):
    job_id: str
    outcome: OutcomeT
    stored: StoredResult
    timings: dict[str, float]


@dataclass(frozen=True)
class JobPlan:
    """How a job fits among others: its synapse (batch), its priority, and its absolute deadline
    (time.monotonic; None: no deadline)."""

    batch: BatchRef = BatchRef()
    priority: str = SYNTHETIC
    deadline: float | None = None

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


@dataclass(frozen=True)
class Step:
    """What the processing step gets besides the source: where to work, whom to report to, and its share of
    the time left (None: unbounded)."""

    workdir: Path
    reporter: ProgressReporter
    seconds: float | None


Process = Callable[[MediaFacts, Step], Awaitable[Processed[OutcomeT]]]


class MediaJobs:
    """Runs a service's media jobs: queue, work directory, fetch, the service's step, publish."""

    def __init__(self, queue: JobQueue, limits: SourceLimits, publisher: Publisher, *, key_prefix: str,
                 work_dir: Path | None = None) -> None:
        self.queue = queue
        self.limits = limits
        self.publisher = publisher
        self.batches = BatchPlanner(queue.concurrency)
        self.key_prefix = key_prefix.strip("/")
        self.work_dir = work_dir

    async def run(self, source_url: str, job_id: str, process: Process[OutcomeT], *,
                  on_progress: ProgressFn | None = None, plan: JobPlan = JobPlan()) -> JobResult[OutcomeT]:
        """One job end to end. A full queue is refused before any progress is emitted; cancellation at any
        point stops the work and leaves no object behind (see `Publisher`). The deadline bounds the queue
        wait and the download; the step gets its batch's fair share of what is left."""
        job_id = job_id_or_new(job_id)
        self.queue.check_room()
        lane = in_lane(ORGANIC) if plan.priority == ORGANIC else contextlib.nullcontext()
        with self.batches.member(plan.batch), lane:
            async with ProgressReporter(on_progress).emitting() as reporter:
                reporter.stage("queued", message=f"{self.queue.pending} job(s) ahead or running")
                async with self.queue.slot(plan.priority):
                    result = await self._work(source_url, job_id, process, plan, reporter)
                reporter.finish()
        return JobResult(job_id, result[0], result[1], reporter.timings)

    async def _work(self, source_url: str, job_id: str, process: Process[OutcomeT], plan: JobPlan,
                    reporter: ProgressReporter) -> tuple[OutcomeT, StoredResult]:
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{job_id}-", dir=self.work_dir) as work:
            workdir = Path(work)
            source = await fetch_source(source_url, workdir / "source.mp4", self.limits, reporter,
                                        timeout=_time_left(plan))
            left = plan.time_left()
            share = None if left is None else self.batches.share(plan.batch, left)
            processed = await process(source, Step(workdir, reporter, share))
            await self.batches.make_distinct(plan.batch, processed.output)
            key = f"{self.key_prefix}/{job_id}/{secrets.token_hex(6)}-{processed.name}".lstrip("/")
            stored = await self.publisher.publish(processed.output, key, reporter)
        return processed.outcome, stored


def _time_left(plan: JobPlan) -> float | None:
    left = plan.time_left()
    if left is not None and left <= 0:
        raise DeadlineTooShort("the call's deadline passed while the job waited for a slot")
    return left
