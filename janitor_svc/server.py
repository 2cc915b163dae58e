"""Wiring: one process = the gRPC host, the dependency monitor, the deletion loop and the temp sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis

from janitor_svc.config import JanitorSettings
from janitor_svc.health import DependencyMonitor
from janitor_svc.janitor import Janitor
from janitor_svc.schedule import DeletionSchedule
from janitor_svc.servicer import JanitorServicer
from janitor_svc.worker import BatchDeleter, DeletionWorker
from mesh.config import RedisSettings, S3Settings
from mesh.server import MeshServer, ServiceHost
from mesh.storage import ObjectStore
from mesh.v1 import janitor_pb2, janitor_pb2_grpc

log = logging.getLogger(__name__)


class JanitorServer(MeshServer):
    """Starts serving at once (health NOT_SERVING) and turns SERVING while Redis and S3 both answer."""

    self_reported_health = True

    def __init__(self, settings: JanitorSettings, redis_settings: RedisSettings, s3_settings: S3Settings) -> None:
        self.settings = settings
        self.redis = Redis.from_url(redis_settings.url, socket_timeout=5, socket_connect_timeout=3,
                                    health_check_interval=30)
        self.store = ObjectStore(s3_settings)
        self.schedule = DeletionSchedule(self.redis)
        self.monitor = DependencyMonitor(self.redis, self.store, self.schedule, settings.health_interval_seconds,
                                         on_change=self._on_readiness)
        self.worker = DeletionWorker(self.schedule, BatchDeleter(self.store), settings,
                                     is_ready=self.monitor.is_ready,
                                     on_store_unreachable=self.monitor.report_failure)
        self.janitor = Janitor(settings, self.schedule, self.store, self.worker)
        super().__init__(ServiceHost(settings.host, settings.port, settings.drain_seconds,
                                     settings.max_connection_age_seconds))
        self.host.add_service(janitor_pb2.DESCRIPTOR.services_by_name["Janitor"],
                              janitor_pb2_grpc.add_JanitorServicer_to_server, JanitorServicer(self.janitor))
        self._tasks: list[asyncio.Task] = []

    async def _on_readiness(self, ready: bool) -> None:
        await self.host.set_serving(ready)
        if ready:
            self.worker.notify_due(0.0)

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            if self.settings.temp_dirs:
                try:
                    await self.janitor.sweep_temp()
                except OSError as exc:
                    log.warning("temp sweep failed", extra={"error": str(exc)})

    async def open(self) -> None:
        """Probe the dependencies once and start the background loops."""
        await self.monitor.check()
        self._tasks = [asyncio.create_task(coro, name=name) for name, coro in (
            ("janitor-monitor", self.monitor.run()), ("janitor-worker", self.worker.run()),
            ("janitor-sweep", self._sweep_periodically()))]

    async def close(self) -> None:
        """Stop the loops (a claim cut short is re-claimed after its lease) and close Redis."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.redis.aclose()
