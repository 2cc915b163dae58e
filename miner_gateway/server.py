"""Wiring: Redis, the validator directory, endpoint pools, the job runner and the axon, in one event loop.

The axon's uvicorn server runs inside the gateway's own asyncio loop (bittensor normally starts it in a
thread with a loop of its own), so the grpc.aio channels, the Redis client and the background tasks are
all used from the loop that created them, and a synapse costs no thread hop. A gRPC health listener
reports SERVING once the axon accepts connections, for compose health checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import socket

import bittensor
import redis.asyncio as redis
import uvicorn
from bittensor.core.errors import InvalidRequestNameError
from pydantic import ValidationError
from starlette.requests import Request

from mesh.config import RedisSettings, load_settings
from mesh.server import ServiceHost
from miner_gateway.auth import ChainMetagraph, Snapshot, SnapshotSource, ValidatorDirectory
from miner_gateway.competition import CompetitionEntry
from miner_gateway.config import GatewaySettings
from miner_gateway.dispatch import Dispatcher
from miner_gateway.handlers import SynapseHandlers
from miner_gateway.jobs import JobRunner, JobStore
from miner_gateway.pool import COMPRESSOR_SERVICE, UPSCALER_SERVICE, EndpointPool

log = logging.getLogger(__name__)

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_URL_PASSWORD = re.compile(r"(//[^:/@?#]*:)[^@/?#]*@|(password=)[^&#]*", re.IGNORECASE)


def without_password(url: str) -> str:
    """A Redis URL fit for a message or a log: any password in it (user info or query) replaced by ***."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}***@" if m.group(1) else f"{m.group(2)}***", url)


def _competition_mode(entry: CompetitionEntry) -> str:
    if entry.withdraw:
        return "withdrawn"
    return f"participating with {entry.repository_url or 'no repository yet'}" if entry.participate else "declining"


class StartupError(RuntimeError):
    """Something the gateway needs is missing at start (Redis, the axon port); the message says what."""


class MalformedSynapse(InvalidRequestNameError):
    """A body that does not parse as its synapse class.

    The axon middleware answers subclasses of InvalidRequestNameError with HTTP 400 and the exception's
    message (other exceptions become an anonymous 500), so the caller learns what was wrong.
    """


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        text = f"{where}: {first['msg']}"
    else:
        text = f"{type(error).__name__}: {error}"
    return _UNPRINTABLE.sub(" ", text)[:200]


class GatewayAxon(bittensor.Axon):
    """A bittensor Axon answering malformed bodies with 400 and a one-line reason (it travels in a header).

    FastAPI's own OpenTelemetry spans (HTTP request, dependencies, endpoint, serialisation) are turned off:
    the gateway's trace starts at its synapse span, which carries the validator's attributes, and the four
    extra spans per request were a measurable share of the gateway's added latency.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        native_telemetry = getattr(self.app, "_telemetry", None)
        if native_telemetry is not None:
            native_telemetry.update(tracing=False, metrics=False, logs=False, operation_spans=False)

    async def verify_body_integrity(self, request: Request) -> dict:
        try:
            return await super().verify_body_integrity(request)
        except (ValueError, TypeError, KeyError) as error:
            route = request.url.path.strip("/")
            raise MalformedSynapse(f"malformed {route} request: {_describe(error)}") from None


class _InLoopServer(uvicorn.Server):
    """uvicorn in the caller's loop; SIGTERM/SIGINT belong to the gateway, which drains in its own order."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class Gateway:
    """The miner gateway: `await start()`, then serve until `stop()` (or, as a process, `serve()` until a signal)."""

    def __init__(
        self,
        settings: GatewaySettings,
        wallet,
        *,
        snapshot_source: SnapshotSource | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.settings = settings
        self._wallet = wallet
        self._chain = (
            None
            if settings.is_local
            else ChainMetagraph(settings.network, settings.netuid, settings.chain_endpoint)
        )
        self._snapshot_source = snapshot_source or self._default_source()
        self._redis_url = redis_url or load_settings(RedisSettings).url
        self.axon: GatewayAxon | None = None
        self.health: ServiceHost | None = None
        self._closers: list = []
        self._http: _InLoopServer | None = None
        self._http_task: asyncio.Task | None = None

    def _default_source(self) -> SnapshotSource:
        if self._chain is not None:
            return self._chain
        local = Snapshot.local(self.settings.validator_hotkeys, owner=self.settings.owner_hotkey)

        async def local_snapshot() -> Snapshot:
            return local

        return local_snapshot

    async def start(self) -> None:
        settings = self.settings
        client = redis.Redis.from_url(self._redis_url, decode_responses=True)
        self._closers.append(client.aclose)
        try:
            await client.ping()
        except (redis.ConnectionError, OSError) as error:
            raise StartupError(
                f"Redis at {without_password(self._redis_url)} is unreachable (REDIS_URL): {error}"
            ) from None

        directory = ValidatorDirectory(
            self._snapshot_source, min_stake=settings.min_stake, sync_seconds=settings.metagraph_sync_seconds
        )
        await directory.start()
        self._closers.append(directory.close)

        pools = {}
        for service, addresses in (
            (UPSCALER_SERVICE, settings.upscaler_addrs),
            (COMPRESSOR_SERVICE, settings.compressor_addrs),
        ):
            if addresses:
                pools[service] = EndpointPool(service, addresses)
                await pools[service].start()
                self._closers.append(pools[service].close)
        dispatcher = Dispatcher(
            pools.get(UPSCALER_SERVICE),
            pools.get(COMPRESSOR_SERVICE),
            upscale_codec=settings.upscale_codec,
            upscale_model=settings.upscale_model,
            max_items=settings.max_items,
            operator_seed=self._wallet.hotkey.ss58_address,
        )

        store = JobStore(
            client, ttl_seconds=settings.job_ttl_seconds, lease_seconds=settings.job_lease_seconds
        )
        jobs = JobRunner(
            store,
            dispatcher,
            timeout_seconds=settings.job_timeout_seconds,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
        )
        await jobs.start()
        self._closers.append(jobs.close)

        competition = CompetitionEntry.from_settings(settings)
        self.axon = self._build_axon()
        SynapseHandlers(settings, directory, dispatcher, jobs, competition).attach(self.axon)
        await self._serve_axon()
        if self._chain is not None:
            await self._chain.publish(self.axon)
            if not directory.is_registered(self._wallet.hotkey.ss58_address):
                log.warning(
                    "this hotkey is not registered on the subnet; validators will not call it",
                    extra={"netuid": settings.netuid},
                )
        self.health = ServiceHost(settings.host, settings.port, settings.drain_seconds,
                                  settings.max_connection_age_seconds)
        await self.health.start()
        # Everything loaded so far lives as long as the process; a full collection walking it (~120k objects
        # from bittensor and the SDKs) pauses the loop ~50 ms, which a synapse in flight would pay.
        gc.freeze()
        await self.health.set_serving(True)
        log.info(
            "gateway serving",
            extra={
                "axon": f"{settings.host}:{settings.axon_port}",
                "hotkey": self._wallet.hotkey.ss58_address,
                "network": settings.network,
                "warrant_task": settings.warrant_task,
                "upscalers": settings.upscaler_addrs,
                "compressors": settings.compressor_addrs,
                "competition": _competition_mode(competition),
            },
        )
        if competition.participate and (gaps := competition.missing()):
            log.warning(
                "taking part in competitions, but submission polls will be answered NOT_READY: "
                + "; ".join(gaps)
            )

    def _build_axon(self) -> GatewayAxon:
        settings = self.settings
        external_ip = settings.external_ip
        if external_ip is None and settings.is_local:
            external_ip = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        axon = GatewayAxon(
            wallet=self._wallet,
            config=bittensor.Config(),
            ip=settings.host,
            port=settings.axon_port,
            external_ip=external_ip,
            external_port=settings.external_port,
        )
        config = axon.fast_config
        config.host = settings.host
        config.timeout_graceful_shutdown = settings.drain_seconds
        self._http = _InLoopServer(config)
        return axon

    async def _serve_axon(self) -> None:
        """Bind here, so a busy port is a clear error (uvicorn would exit the process without a word)."""
        self._http_task = asyncio.create_task(self._http.serve(sockets=[self._bind_axon()]), name="axon")
        while not self._http.started:
            await asyncio.sleep(0.01)
        self.axon.started = True

    def _bind_axon(self) -> socket.socket:
        """A listening TCP socket; IPPROTO_TCP explicitly, or asyncio leaves Nagle on (+40 ms per reply)."""
        host, port = self.settings.host, self.settings.axon_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as error:
            listener.close()
            raise StartupError(f"the axon cannot listen on {host}:{port}: {error}") from None
        return listener

    async def stop(self) -> None:
        """Health NOT_SERVING, stop taking synapses (in-flight ones finish within the drain time), close."""
        if self.health is not None:
            await self.health.stop(0)
        await self._close()

    async def _close(self) -> None:
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
        for close in reversed(self._closers):
            await close()
        self._closers.clear()

    async def serve(self) -> None:
        """Start, then run until SIGTERM/SIGINT, drain and stop; a failed start stops what it started."""
        try:
            await self.start()
        except StartupError as error:
            await self.stop()
            raise SystemExit(f"miner-gateway: {error}") from None
        except BaseException:
            await self.stop()
            raise
        await self.health.serve_until_signal(on_shutdown=self._close)
