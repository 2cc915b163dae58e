"""Server bootstrap shared by every service: grpc.aio, health, reflection and a graceful SIGTERM drain.

A service builds a `ServiceHost`, registers its servicers, starts it, loads what it needs, and only then
calls `set_serving(True)`: health says NOT_SERVING until the service says it is ready.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic_settings import BaseSettings

from mesh.config import DEFAULT_MAX_CONNECTION_AGE_SECONDS, MediaServiceSettings, load_settings
from mesh.janitor_client import JanitorClient
from mesh.logs import configure_logging
from mesh.telemetry import init_telemetry

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class ServiceHost:
    """One grpc.aio server hosting a service's servicers, the health servicer and reflection."""

    def __init__(self, host: str = "0.0.0.0", port: int = 0, drain_seconds: float = 10.0,
                 max_connection_age_seconds: float = DEFAULT_MAX_CONNECTION_AGE_SECONDS) -> None:
        self.server = grpc.aio.server(options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Clients get a GOAWAY after this age (gRPC adds +-10 % jitter) and reconnect, re-resolving a
            # dns:/// target, so replicas added behind a name get calls. The grace stays gRPC's default,
            # unlimited: a call in flight on an old connection is never cut by its age.
            ("grpc.max_connection_age_ms", round(max_connection_age_seconds * 1000)),
        ])
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = []
        self._address = f"{host}:{port}"
        self._drain_seconds = drain_seconds
        self.port: int = 0
        self._stopped = asyncio.Event()

    def add_service(self, descriptor: ServiceDescriptor, register: Callable[[object, grpc.aio.Server], None],
                    servicer: object) -> None:
        """Register a servicer; its full name goes into health and reflection."""
        register(servicer, self.server)
        self._service_names.append(descriptor.full_name)

    async def start(self) -> int:
        """Bind and start serving (health NOT_SERVING); returns the bound port."""
        reflection.enable_server_reflection(
            (*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.port = self.server.add_insecure_port(self._address)
        if self.port == 0:
            raise OSError(f"could not bind {self._address}")
        await self.set_serving(False)
        await self.server.start()
        log.info("listening", extra={"address": self._address, "port": self.port,
                                     "services": self._service_names})
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """Flip the overall and per-service health status."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self._service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, give in-flight ones `grace` seconds, then stop."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self._drain_seconds if grace is None else grace)
        self._stopped.set()

    async def serve_until_signal(self, on_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run until SIGTERM or SIGINT, then drain, call `on_shutdown`, and return."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested.set)
        await stop_requested.wait()
        log.info("draining", extra={"grace_seconds": self._drain_seconds})
        await self.stop()
        if on_shutdown is not None:
            await on_shutdown()


class MeshServer:
    """Every gRPC service's lifecycle, with the same names everywhere.

    `start()` = `bind()` (answering, health NOT_SERVING) then `ready()`: `open()` the service (a subclass
    loads models, checks its dependencies, starts its loops) and report SERVING, unless the service follows
    its dependencies' health itself (`self_reported_health`). `stop()` drains in-flight calls, then
    `close()`s. `serve()` is a process's life until SIGTERM."""

    self_reported_health = False

    def __init__(self, host: ServiceHost) -> None:
        self.host = host

    async def open(self) -> None:
        """Make the service ready to serve."""

    async def close(self) -> None:
        """Release what `open()` and the calls took (after the drain)."""

    async def bind(self) -> int:
        """Start answering, health NOT_SERVING; returns the bound port."""
        return await self.host.start()

    async def ready(self) -> None:
        """Open the service, then report SERVING (unless its health follows its dependencies)."""
        await self.open()
        if not self.self_reported_health:
            await self.host.set_serving(True)

    async def start(self) -> int:
        """`bind()` then `ready()`; returns the bound port."""
        port = await self.bind()
        await self.ready()
        return port

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, give running ones `grace` seconds (default: the drain setting), then close."""
        await self.host.stop(grace)
        await self.close()

    async def serve(self) -> None:
        await self.start()
        await self.host.serve_until_signal(on_shutdown=self.close)


class MediaService(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


class MediaServer(MeshServer):
    """A media service's process (upscaler, compressor): its gRPC-free `service`, which a subclass sets and
    registers, and the janitor client the service schedules deletions through."""

    service: MediaService

    def __init__(self, settings: MediaServiceSettings) -> None:
        super().__init__(ServiceHost(settings.host, settings.port, settings.drain_seconds,
                                     settings.max_connection_age_seconds))
        self.janitor = JanitorClient(settings.janitor_addr)

    async def open(self) -> None:
        await self.service.start()

    async def close(self) -> None:
        await self.service.close()
        await self.janitor.close()


class Servable(Protocol):
    async def serve(self) -> None: ...


def run_service(name: str, log_level: str, make_server: Callable[[], Servable]) -> None:
    """A service process's life: JSON logs, telemetry before any server or channel exists, the server
    built and served inside the event loop until SIGTERM drains it, then the last spans and metrics flushed."""
    configure_logging(name, log_level)
    telemetry = init_telemetry(name)

    async def serve() -> None:
        await make_server().serve()

    try:
        asyncio.run(serve())
    finally:
        telemetry.shutdown()


def service_main(name: str, make_server: Callable[..., Servable], settings: type[BaseSettings],
                 *dependencies: type[BaseSettings]) -> Callable[[], None]:
    """A service's console entry point: read its settings and those of its dependencies (exit with a line
    per bad variable), then `run_service` with `make_server(settings, *dependencies)`."""

    def main() -> None:
        own = load_settings(settings)
        others = [load_settings(cls) for cls in dependencies]
        run_service(name, own.log_level, lambda: make_server(own, *others))

    return main
