"""The replicas of one service (an upscaler or compressor pool) as the gateway sees them.

Each replica gets one channel, a background health probe (grpc.health.v1, every `health_interval`
seconds) and a count of the calls in flight on it, so the dispatcher can ask for the least-busy healthy
replica it has not tried yet. Which streaming method each service exposes is recorded here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.server import MAX_MESSAGE_BYTES
from mesh.telemetry import rpc_attributes
from mesh.v1 import compressor_pb2, compressor_pb2_grpc, upscaler_pb2, upscaler_pb2_grpc

log = logging.getLogger(__name__)

UPSCALER_SERVICE = upscaler_pb2.DESCRIPTOR.services_by_name["Upscaler"].full_name
COMPRESSOR_SERVICE = compressor_pb2.DESCRIPTOR.services_by_name["Compressor"].full_name

# Each service's streaming method: its name in the contract and the stub class that calls it.
STREAMING_METHODS = {
    UPSCALER_SERVICE: ("Upscale", upscaler_pb2_grpc.UpscalerStub),
    COMPRESSOR_SERVICE: ("Compress", compressor_pb2_grpc.CompressorStub),
}


@dataclass(eq=False)
class Endpoint:
    """One replica: its channel, the streaming method, and what the gateway knows about its load."""

    address: str
    channel: grpc.aio.Channel
    method: Callable[..., object]
    in_flight: int = 0
    picks: int = 0
    healthy: bool = True


class EndpointPool:
    """Replicas of one service; chooses the least-busy healthy one and probes health in the background."""

    def __init__(self, service: str, addresses: Sequence[str], health_interval: float = 5.0) -> None:
        self.service = service
        self._method_name, self._stub = STREAMING_METHODS[service]
        self.rpc_attributes = rpc_attributes(f"/{service}/{self._method_name}")
        self.addresses = list(addresses)
        self.health_interval = health_interval
        self.endpoints: list[Endpoint] = []
        self._prober: asyncio.Task | None = None

    async def start(self) -> None:
        """Open a channel per replica and probe health now and every `health_interval` seconds."""
        for address in self.addresses:
            channel = grpc.aio.insecure_channel(
                address, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
            )
            self.endpoints.append(Endpoint(address, channel, getattr(self._stub(channel), self._method_name)))
        await self.probe()
        self._prober = asyncio.create_task(self._probe_forever(), name=f"health {self.service}")

    def choose(self, exclude: set[str]) -> Endpoint | None:
        """Least in-flight calls among healthy replicas not yet tried; any untried one if none is healthy."""
        candidates = [e for e in self.endpoints if e.address not in exclude]
        pool = [e for e in candidates if e.healthy] or candidates
        if not pool:
            return None
        chosen = min(pool, key=lambda e: (e.in_flight, e.picks))
        chosen.picks += 1
        return chosen

    async def probe(self) -> None:
        await asyncio.gather(*(self._probe_one(endpoint) for endpoint in self.endpoints))

    async def _probe_one(self, endpoint: Endpoint) -> None:
        try:
            reply = await health_pb2_grpc.HealthStub(endpoint.channel).Check(
                health_pb2.HealthCheckRequest(service=self.service), timeout=min(1.0, self.health_interval)
            )
            healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            healthy = False
        if healthy != endpoint.healthy:
            log.info(
                "endpoint health changed",
                extra={"grpc_service": self.service, "endpoint": endpoint.address, "healthy": healthy},
            )
        endpoint.healthy = healthy

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            await self.probe()

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
        await asyncio.gather(*(endpoint.channel.close() for endpoint in self.endpoints))
