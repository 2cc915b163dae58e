"""The janitor's domain API (no gRPC): validated scheduling, cancel, listing and a sweep on demand.

The servicer and the CLI call this; `schedule.py` holds the Redis state, `worker.py` the deletion loop
and `sweep.py` the temp-file sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError

from janitor_svc.config import JanitorSettings
from janitor_svc.schedule import DeletionSchedule, Page, ScheduleItem
from janitor_svc.sweep import SweepReport, sweep_temp
from janitor_svc.worker import DeletionWorker, DrainReport
from mesh.errors import DependencyUnavailable, InvalidInput
from mesh.storage import ObjectStore

PAST_TOLERANCE_SECONDS = 60.0
MAX_KEY_BYTES = 1024
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_BATCH_SIZE = 1000
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@contextlib.contextmanager
def _redis_errors() -> Iterator[None]:
    """Redis trouble reaches callers as UNAVAILABLE, not as an internal error."""
    try:
        yield
    except RedisError as exc:
        raise DependencyUnavailable(f"the deletion schedule (Redis) is unavailable: {exc}") from exc


@dataclass(frozen=True)
class DeletionRequest:
    """One object to delete after `delay` seconds or at `delete_at` (Unix seconds); bucket "" is the
    janitor's own."""

    bucket: str
    key: str
    delay: float | None = None
    delete_at: float | None = None


@dataclass(frozen=True)
class Scheduled:
    due: float
    replaced: bool


@dataclass(frozen=True)
class SweepNowReport:
    objects: DrainReport
    temp: SweepReport


class Janitor:
    """Validates requests against the settings and the store, then acts on the schedule."""

    def __init__(self, settings: JanitorSettings, schedule: DeletionSchedule, store: ObjectStore,
                 worker: DeletionWorker, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.schedule = schedule
        self.store = store
        self.worker = worker
        self.clock = clock
        self._known_buckets = {store.bucket}

    async def _bucket(self, bucket: str) -> str:
        """The bucket to use; INVALID_ARGUMENT for a malformed or unknown name."""
        if not bucket:
            return self.store.bucket
        if bucket in self._known_buckets:
            return bucket
        if not _BUCKET_NAME.match(bucket):
            raise InvalidInput(f"bucket {bucket!r} is not a valid S3 bucket name")
        if not await asyncio.to_thread(self.store.bucket_exists, bucket):
            raise InvalidInput(f"bucket {bucket!r} does not exist")
        self._known_buckets.add(bucket)
        return bucket

    @staticmethod
    def _key(key: str) -> str:
        if not key:
            raise InvalidInput("object_key is required")
        if len(key.encode()) > MAX_KEY_BYTES:
            raise InvalidInput(f"object_key is longer than {MAX_KEY_BYTES} bytes")
        return key

    def _due(self, delay: float | None, delete_at: float | None) -> float:
        now = self.clock()
        limit = self.settings.max_delay_seconds
        if delay is not None:
            if delay < 0:
                raise InvalidInput(f"delay must not be negative, got {delay:g} s")
            if delay > limit:
                raise InvalidInput(f"delay of {delay:g} s exceeds the {limit:g} s maximum")
            return now + delay
        if delete_at is not None:
            if delete_at < now - PAST_TOLERANCE_SECONDS:
                raise InvalidInput(f"delete_at is {now - delete_at:.0f} s in the past")
            if delete_at > now + limit:
                raise InvalidInput(f"delete_at is more than {limit:g} s from now")
            return max(delete_at, now)
        raise InvalidInput("one of delay or delete_at is required")

    async def _validated(self, request: DeletionRequest) -> ScheduleItem:
        """The (bucket, key, due time) to schedule; INVALID_ARGUMENT for anything the service would refuse."""
        key = self._key(request.key)
        due = self._due(request.delay, request.delete_at)
        return await self._bucket(request.bucket), key, due

    async def schedule_deletion(self, bucket: str, key: str, *, delay: float | None = None,
                                delete_at: float | None = None) -> Scheduled:
        """Schedule (or move) one object's deletion; idempotent per (bucket, key)."""
        bucket, key, due = await self._validated(DeletionRequest(bucket, key, delay, delete_at))
        with _redis_errors():
            replaced = await self.schedule.schedule(bucket, key, due)
        self.worker.notify_due(due)
        return Scheduled(due, replaced)

    async def schedule_deletions(self, requests: Sequence[DeletionRequest]) -> list[Scheduled]:
        """Schedule 1 to MAX_BATCH_SIZE deletions at once, results in request order. All are validated
        before any is scheduled, so one bad item rejects the batch and leaves the schedule untouched."""
        if not requests:
            raise InvalidInput("deletions must not be empty")
        if len(requests) > MAX_BATCH_SIZE:
            raise InvalidInput(f"at most {MAX_BATCH_SIZE} deletions per call, got {len(requests)}")
        items = []
        for index, request in enumerate(requests):
            try:
                items.append(await self._validated(request))
            except InvalidInput as exc:
                raise InvalidInput(f"deletions[{index}]: {exc}") from None
        with _redis_errors():
            replaced = await self.schedule.schedule_many(items)
        self.worker.notify_due(min(due for _, _, due in items))
        return [Scheduled(due, flag) for (_, _, due), flag in zip(items, replaced)]

    async def cancel_deletion(self, bucket: str, key: str) -> bool:
        key = self._key(key)
        with _redis_errors():
            return await self.schedule.cancel(bucket or self.store.bucket, key)

    async def list_pending(self, *, dead_letter: bool = False, page_size: int = 0, page_token: str = "") -> Page:
        if page_size > MAX_PAGE_SIZE:
            raise InvalidInput(f"page_size must be at most {MAX_PAGE_SIZE}, got {page_size}")
        with _redis_errors():
            return await self.schedule.page(dead_letter=dead_letter, size=page_size or DEFAULT_PAGE_SIZE,
                                            token=page_token)

    async def sweep_temp(self) -> SweepReport:
        settings = self.settings
        return await asyncio.to_thread(sweep_temp, settings.temp_dirs, ttl_seconds=settings.temp_ttl_seconds,
                                       quota_bytes=settings.temp_quota_bytes,
                                       grace_seconds=settings.temp_grace_seconds)

    async def run_sweep(self) -> SweepNowReport:
        """Delete every due object and sweep the temp directories, now."""
        with _redis_errors():
            objects, temp = await asyncio.gather(self.worker.drain(), self.sweep_temp())
        return SweepNowReport(objects, temp)
