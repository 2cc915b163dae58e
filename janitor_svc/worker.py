"""The deletion loop: claim due items, delete them in S3 batches, acknowledge, retry or dead-letter.

The loop sleeps until the earliest due time (at most `idle_poll_seconds`, to see other replicas'
schedules) and is woken at once when this process schedules something earlier, so due items go
within about a second, not on a long poll. It never sleeps less than BATCH_WINDOW_SECONDS, so a steady
stream of due items is deleted in batches rather than one S3 request per object.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import urllib3
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from opentelemetry import metrics
from redis.exceptions import RedisError

from janitor_svc.config import JanitorSettings
from janitor_svc.schedule import Claim, ClaimedItem, DeletionSchedule
from mesh.storage import ObjectStore

log = logging.getLogger(__name__)

BATCH_WINDOW_SECONDS = 0.05

_meter = metrics.get_meter("janitor_svc")
_lag = _meter.create_histogram("janitor.deletion.lag", unit="s",
                               description="time from an object's due time to its deletion")
_outcomes = _meter.create_counter("janitor.deletions", description="deletion attempts by outcome")


class StoreUnreachable(Exception):
    """The object store did not answer at all; claims go back without counting an attempt."""


class BatchDeleter:
    """Deletes many keys of one bucket with one S3 DeleteObjects request (missing keys count as deleted)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def delete(self, bucket: str, keys: list[str]) -> dict[str, str]:
        """Returns {key: error} for the keys that could not be deleted."""
        try:
            errors = self.store.client.remove_objects(bucket, [DeleteObject(key) for key in keys])
            return {error.name: f"{error.code}: {error.message}" for error in errors}
        except S3Error as exc:
            return {key: f"{exc.code}: {exc.message}" for key in keys}
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnreachable(f"S3 endpoint {self.store.settings.endpoint} unreachable: {exc}") from exc


@dataclass(frozen=True)
class DrainReport:
    deleted: int = 0
    failed: int = 0
    dead_lettered: int = 0

    def __add__(self, other: DrainReport) -> DrainReport:
        return DrainReport(self.deleted + other.deleted, self.failed + other.failed,
                           self.dead_lettered + other.dead_lettered)


class DeletionWorker:
    """Runs claims against the schedule; safe to run in many processes against one Redis."""

    def __init__(self, schedule: DeletionSchedule, deleter: BatchDeleter, settings: JanitorSettings, *,
                 is_ready: Callable[[], bool] = lambda: True,
                 on_store_unreachable: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.schedule = schedule
        self.deleter = deleter
        self.settings = settings
        self.is_ready = is_ready
        self.on_store_unreachable = on_store_unreachable
        self.clock = clock
        self._wake = asyncio.Event()
        self._sleep_until = 0.0

    def notify_due(self, due: float) -> None:
        """Wake the loop when `due` is earlier than the time it planned to look again."""
        if due < self._sleep_until:
            self._wake.set()

    async def drain(self) -> DrainReport:
        """Delete everything due now, `delete_concurrency` batches at a time."""
        lanes = await asyncio.gather(*(self._drain_lane() for _ in range(self.settings.delete_concurrency)))
        return sum(lanes, DrainReport())

    async def _drain_lane(self) -> DrainReport:
        report = DrainReport()
        while True:
            claim = await self.schedule.claim(self.clock(), self.settings.batch_size, self.settings.lease_seconds)
            if not claim.items:
                return report
            report += await self.process(claim)
            if len(claim.items) < self.settings.batch_size or not self.is_ready():
                return report

    async def process(self, claim: Claim) -> DrainReport:
        """Delete one claim's objects and record each outcome in the schedule."""
        by_bucket: dict[str, list[ClaimedItem]] = defaultdict(list)
        for item in claim.items:
            by_bucket[item.bucket].append(item)
        report = DrainReport()
        for bucket, items in by_bucket.items():
            if self.clock() >= claim.lease_until:
                break  # the lease ran out: another worker may own these items now
            try:
                errors = await asyncio.to_thread(self.deleter.delete, bucket, [item.key for item in items])
            except StoreUnreachable as exc:
                log.warning("object store unreachable; deletions postponed", extra={"error": str(exc)})
                self.on_store_unreachable()
                await self.schedule.release(claim, items, self.clock() + self.settings.backoff_seconds)
                _outcomes.add(len(items), {"outcome": "postponed"})
                report += DrainReport(failed=len(items))
                continue
            now = self.clock()
            done = [item for item in items if item.key not in errors]
            await self.schedule.ack(claim, done)
            for item in done:
                _lag.record(max(0.0, now - item.due))
            _outcomes.add(len(done), {"outcome": "deleted"})
            failed = [item for item in items if item.key in errors]
            dead = 0
            for error, group in _group_by_error(failed, errors).items():
                dead += await self.schedule.fail(
                    claim, group, error, now, max_attempts=self.settings.max_attempts,
                    backoff=self.settings.backoff_seconds, backoff_max=self.settings.backoff_max_seconds)
            if failed:
                log.warning("deletions failed", extra={"bucket": bucket, "failed": len(failed),
                                                       "dead_lettered": dead, "errors": sorted(set(errors.values()))})
                _outcomes.add(len(failed) - dead, {"outcome": "retry"})
                _outcomes.add(dead, {"outcome": "dead_lettered"})
            report += DrainReport(len(done), len(failed), dead)
        return report

    async def run(self) -> None:
        """Drain forever; errors pause the loop for one poll instead of ending it."""
        idle = self.settings.idle_poll_seconds
        while True:
            self._wake.clear()
            next_due = None
            if self.is_ready():
                try:
                    await self.drain()
                    next_due = await self.schedule.next_due()
                except RedisError as exc:
                    log.warning("redis unavailable; deletion loop paused", extra={"error": str(exc)})
                except Exception:  # noqa: BLE001 - the loop must outlive any one bad batch
                    log.exception("deletion pass failed; claims are retried after their lease")
            now = self.clock()
            delay = idle if next_due is None else min(max(next_due - now, BATCH_WINDOW_SECONDS), idle)
            self._sleep_until = now + delay
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass


def _group_by_error(items: list[ClaimedItem], errors: dict[str, str]) -> dict[str, list[ClaimedItem]]:
    grouped: dict[str, list[ClaimedItem]] = defaultdict(list)
    for item in items:
        grouped[errors[item.key]].append(item)
    return grouped
