"""The replicas of one service (an upscaler or compressor pool) as the gateway sees them.

An endpoint is one gRPC target, `host:port` or `dns:///host:port` (the same to gRPC): every address the name
resolves to (e.g. a headless Kubernetes Service) is one group; an IP address is a single replica. Each
endpoint gets one channel whose service config lets gRPC follow the replicas behind it: `round_robin` over the
resolved addresses, client-side health checking (every connection watches grpc.health.v1 `Watch` for the
service, so a replica that turns NOT_SERVING gets no new calls the moment it says so, without polling), and a
retry on another address of a call refused with UNAVAILABLE before any response. Servers close connections
after a maximum age (`mesh.server`), so a channel re-resolves its name and finds replicas that came or went.

What gRPC cannot do stays here: choose across endpoints by the calls in flight on each, preferring an
endpoint whose channel is READY (at least one healthy replica) to one still connecting or failing. Which
streaming method each service exposes is recorded here too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from mesh.server import MAX_MESSAGE_BYTES
from mesh.telemetry import rpc_attributes
from mesh.v1 import compressor_pb2, compressor_pb2_grpc, upscaler_pb2, upscaler_pb2_grpc
from miner_gateway.config import TARGET

log = logging.getLogger(__name__)

UPSCALER_SERVICE = upscaler_pb2.DESCRIPTOR.services_by_name["Upscaler"].full_name
COMPRESSOR_SERVICE = compressor_pb2.DESCRIPTOR.services_by_name["Compressor"].full_name

# Each service's streaming method: its name in the contract and the stub class that calls it.
STREAMING_METHODS = {
    UPSCALER_SERVICE: ("Upscale", upscaler_pb2_grpc.UpscalerStub),
    COMPRESSOR_SERVICE: ("Compress", compressor_pb2_grpc.CompressorStub),
}

# Attempts of one call within an endpoint's channel (gRPC caps it at 5); the pool retries across endpoints.
CHANNEL_ATTEMPTS = 4

# Channel states best first: a READY channel has at least one connected, SERVING replica.
_STATE_RANK = {
    grpc.ChannelConnectivity.READY: 0,
    grpc.ChannelConnectivity.IDLE: 1,
    grpc.ChannelConnectivity.CONNECTING: 1,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE: 2,
    grpc.ChannelConnectivity.SHUTDOWN: 3,
}
_SETTLED = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)


def service_config(service: str) -> dict:
    """The service config every endpoint channel of `service` carries."""
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": service},
        "methodConfig": [{
            "name": [{"service": service}],
            "retryPolicy": {
                "maxAttempts": CHANNEL_ATTEMPTS,
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }],
        # A failing group stops retrying once refusals outnumber successes about ten to one.
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }


def open_channel(target: str, service: str) -> grpc.aio.Channel:
    """A channel to `target` that balances, health-checks and retries as `service_config` says."""
    return grpc.aio.insecure_channel(target, options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.service_config", json.dumps(service_config(service))),
        ("grpc.service_config_disable_resolution", 1),  # ours, never one from DNS TXT records
        ("grpc.enable_retries", 1),
    ])


@dataclass(eq=False)
class Endpoint:
    """One target (a replica or a DNS group): its channel, the streaming method, and the calls in flight."""

    address: str
    channel: grpc.aio.Channel
    method: Callable[..., object]
    in_flight: int = 0
    picks: int = 0

    @property
    def state(self) -> grpc.ChannelConnectivity:
        """The channel's state as gRPC's health checking left it; an idle channel starts connecting."""
        return self.channel.get_state(try_to_connect=True)

    @property
    def healthy(self) -> bool:
        return self.state == grpc.ChannelConnectivity.READY


class EndpointPool:
    """Endpoints of one service; chooses the least-busy one among the healthiest not yet tried."""

    def __init__(self, service: str, addresses: Sequence[str]) -> None:
        bad = [address for address in addresses if not TARGET.fullmatch(address)]
        if bad:
            raise ValueError(f"not a gRPC target (host:port or dns:///host:port): {', '.join(bad)}")
        self.service = service
        self._method_name, self._stub = STREAMING_METHODS[service]
        self.rpc_attributes = rpc_attributes(f"/{service}/{self._method_name}")
        self.addresses = list(addresses)
        self.endpoints: list[Endpoint] = []
        self._watchers: list[asyncio.Task] = []

    async def start(self, settle_seconds: float = 2.0) -> None:
        """Open a channel per endpoint and give them up to `settle_seconds` to connect and hear the first
        health status (over each connection's Watch), so the first choice is an informed one."""
        for address in self.addresses:
            channel = open_channel(address, self.service)
            endpoint = Endpoint(address, channel, getattr(self._stub(channel), self._method_name))
            self.endpoints.append(endpoint)
            self._watchers.append(asyncio.create_task(self._log_changes(endpoint), name=f"state {address}"))
        settling = [asyncio.ensure_future(_settled(endpoint)) for endpoint in self.endpoints]
        if settling:
            _, pending = await asyncio.wait(settling, timeout=settle_seconds)
            for task in pending:
                task.cancel()

    def choose(self, exclude: set[str]) -> Endpoint | None:
        """Among endpoints not yet tried, the best channel state first, then the fewest calls in flight."""
        candidates = [e for e in self.endpoints if e.address not in exclude]
        if not candidates:
            return None
        chosen = min(candidates, key=lambda e: (_STATE_RANK[e.state], e.in_flight, e.picks))
        chosen.picks += 1
        return chosen

    async def _log_changes(self, endpoint: Endpoint) -> None:
        """Log the state changes gRPC reports, as they come: turning READY or failing at INFO (an operator's
        view of replica health), the reconnects in between (every max connection age) at DEBUG."""
        state = settled = endpoint.state
        while state != grpc.ChannelConnectivity.SHUTDOWN:
            await endpoint.channel.wait_for_state_change(state)
            state = endpoint.state
            notable = state in _SETTLED and state != settled
            settled = state if state in _SETTLED else settled
            log.log(logging.INFO if notable else logging.DEBUG, "endpoint state changed",
                    extra={"grpc_service": self.service, "endpoint": endpoint.address, "state": state.name})

    async def close(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*(endpoint.channel.close() for endpoint in self.endpoints))


async def _settled(endpoint: Endpoint) -> None:
    """Return once the channel is READY or failing, i.e. no longer connecting."""
    state = endpoint.state
    while state not in _SETTLED and state != grpc.ChannelConnectivity.SHUTDOWN:
        await endpoint.channel.wait_for_state_change(state)
        state = endpoint.state
