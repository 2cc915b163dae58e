"""Watches Redis and S3; the janitor is ready (health SERVING) only while both answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from redis.asyncio import Redis
from redis.exceptions import RedisError

from janitor_svc.schedule import DeletionSchedule
from mesh.errors import MeshError
from mesh.storage import ObjectStore

log = logging.getLogger(__name__)


class DependencyMonitor:
    """Probes both dependencies every `interval` seconds and reports each change of readiness."""

    def __init__(self, redis: Redis, store: ObjectStore, schedule: DeletionSchedule, interval: float,
                 on_change: Callable[[bool], Awaitable[None]]) -> None:
        self.redis = redis
        self.store = store
        self.schedule = schedule
        self.interval = interval
        self.on_change = on_change
        self.ready = False
        self.problem = "not probed yet"
        self._pending = 0
        self._dead = 0
        self._probe_now = asyncio.Event()
        meter = metrics.get_meter("janitor_svc")
        meter.create_observable_gauge("janitor.pending", [self._observe_pending],
                                      description="scheduled deletions not yet done")
        meter.create_observable_gauge("janitor.dead_letter", [self._observe_dead],
                                      description="deletions that failed too often")

    def _observe_pending(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self._pending)]

    def _observe_dead(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self._dead)]

    def is_ready(self) -> bool:
        return self.ready

    def report_failure(self) -> None:
        """Called by the worker when S3 stopped answering: not ready until a probe succeeds."""
        self.ready = False
        self._probe_now.set()

    async def probe(self) -> str:
        """"" when both dependencies answer, else what is wrong."""
        try:
            async with asyncio.timeout(self.interval + 3):
                await self.redis.ping()
                self._pending = await self.schedule.pending()
                self._dead = await self.schedule.dead()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"redis unavailable: {exc or type(exc).__name__}"
        try:
            async with asyncio.timeout(self.interval + 5):
                await asyncio.to_thread(self.store.bucket_exists, self.store.bucket)
        except (MeshError, TimeoutError) as exc:
            return f"S3 unavailable: {exc or type(exc).__name__}"
        return ""

    async def check(self) -> bool:
        """Probe once and publish a change of readiness."""
        problem = await self.probe()
        ready = not problem
        changed = ready != self.ready or problem != self.problem
        self.ready, self.problem = ready, problem
        if changed:
            if ready:
                log.info("dependencies available")
            else:
                log.warning("dependencies unavailable", extra={"problem": problem})
            await self.on_change(ready)
        return ready

    async def run(self) -> None:
        while True:
            await self.check()
            self._probe_now.clear()
            try:
                await asyncio.wait_for(self._probe_now.wait(), timeout=self.interval)
            except TimeoutError:
                pass
