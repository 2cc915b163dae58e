"""Gateway fixtures: local wallets, a fake metagraph and subtensor (no chain here), scripted gRPC backends, a
running gateway (real bittensor Axon on loopback) and real Dendrites signing as a validator or subnet owner."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import bittensor
import httpx
import pytest
from bittensor_wallet import Wallet
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mesh.embedded import free_port
from mesh.telemetry import init_telemetry
from miner_gateway.auth import Snapshot
from miner_gateway.config import GatewaySettings
from miner_gateway.server import Gateway
from tests.miner_gateway.scripted import start_backend

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="package", autouse=True)
def loopback_external_ip():
    """The Dendrite and Axon look up the public IP over the network; here it is loopback."""
    with mock.patch("bittensor.utils.networking.get_external_ip", return_value="127.0.0.1"):
        yield


@pytest.fixture(scope="session", autouse=True)
def spans() -> InMemorySpanExporter:
    """Telemetry as the gateway process sets it up (gRPC instrumented), with spans kept in memory."""
    exporter = InMemorySpanExporter()
    init_telemetry("miner-gateway-tests").tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@dataclass
class Wallets:
    path: Path
    miner: Wallet
    validator: Wallet
    second_validator: Wallet
    stranger: Wallet
    registered_miner: Wallet
    poor_validator: Wallet
    owner: Wallet


@pytest.fixture(scope="package")
def wallets(tmp_path_factory) -> Wallets:
    path = tmp_path_factory.mktemp("wallets")

    def make(name: str) -> Wallet:
        wallet = Wallet(name=name, hotkey="default", path=str(path))
        wallet.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)
        return wallet

    return Wallets(
        path,
        *(
            make(name)
            for name in (
                "miner",
                "validator",
                "second-validator",
                "stranger",
                "registered-miner",
                "poor-validator",
                "owner",
            )
        ),
    )


@dataclass
class FakeMetagraph:
    """Stands in for bittensor.Metagraph, which cannot be built without a chain: the three fields read."""

    hotkeys: list[str] = field(default_factory=list)
    validator_permit: list[bool] = field(default_factory=list)
    S: list[float] = field(default_factory=list)

    def register(self, hotkey: str, permit: bool, stake: float) -> None:
        self.hotkeys.append(hotkey)
        self.validator_permit.append(permit)
        self.S.append(stake)


@pytest.fixture()
def fake_metagraph(wallets) -> FakeMetagraph:
    metagraph = FakeMetagraph()
    metagraph.register(wallets.miner.hotkey.ss58_address, False, 10.0)
    metagraph.register(wallets.validator.hotkey.ss58_address, True, 5000.0)
    metagraph.register(wallets.registered_miner.hotkey.ss58_address, False, 50.0)
    metagraph.register(wallets.poor_validator.hotkey.ss58_address, True, 3.0)
    return metagraph


@pytest.fixture()
async def backend():
    server = await start_backend("primary")
    yield server
    await server.host.stop(0)


@pytest.fixture()
async def gateway_factory(wallets, redis_url, fake_metagraph, backend):
    """Start gateways against the fake metagraph (and the shared Valkey unless `store_url` names another
    Redis); every one is stopped at the end of the test."""
    started: list[Gateway] = []

    async def start(*, store_url: str | None = None, **overrides) -> Gateway:
        values = dict(
            host="127.0.0.1",
            port=0,
            axon_port=free_port(),
            network="local",
            validator_hotkeys=[wallets.validator.hotkey.ss58_address],
            owner_hotkey=wallets.owner.hotkey.ss58_address,
            upscaler_addrs=[backend.address],
            compressor_addrs=[backend.address],
            deadline_margin_seconds=0.5,
            drain_seconds=0,
            metagraph_sync_seconds=60,
            job_lease_seconds=1.0,
        )
        values.update(overrides)
        settings = GatewaySettings(_env_file=None, **values)

        async def metagraph_snapshot() -> Snapshot:
            return Snapshot.from_metagraph(fake_metagraph, owner=settings.owner_hotkey)

        gateway = Gateway(
            settings, wallets.miner, snapshot_source=metagraph_snapshot, redis_url=store_url or redis_url
        )
        started.append(gateway)
        await gateway.start()
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


@pytest.fixture()
async def gateway(gateway_factory) -> Gateway:
    return await gateway_factory()


@pytest.fixture()
async def dendrite(wallets):
    client = bittensor.Dendrite(wallet=wallets.validator)
    yield client
    await client.aclose_session()


@pytest.fixture()
async def owner_dendrite(wallets):
    """Signs as the subnet owner, the only caller of the competition synapses."""
    client = bittensor.Dendrite(wallet=wallets.owner)
    yield client
    await client.aclose_session()


class FakeSubtensor:
    """Stands in for the chain (none can run here): serves the fake metagraph and the subnet owner, and
    records the axon the gateway publishes. Everything else in the test is real."""

    def __init__(self, metagraph, owner: str | None, network: str) -> None:
        self.network = network
        self._metagraph = metagraph
        self.owner = owner
        self.reads: list[tuple[int, bool]] = []
        self.served: list[tuple[int, str, int]] = []

    def metagraph(self, netuid: int, lite: bool = True):
        self.reads.append((netuid, lite))
        return self._metagraph

    def get_subnet_owner_hotkey(self, netuid: int) -> str | None:
        return self.owner

    def serve_axon(self, netuid: int, axon) -> None:
        self.served.append((netuid, axon.external_ip, axon.external_port))


async def call(
    dendrite: bittensor.Dendrite, gateway: Gateway, synapse: bittensor.Synapse, timeout: float = 10.0
) -> bittensor.Synapse:
    return await dendrite.call(gateway.axon.info(), synapse, timeout=timeout, deserialize=False)


async def post_raw(
    dendrite: bittensor.Dendrite,
    gateway: Gateway,
    synapse_class: type[bittensor.Synapse],
    body: dict | str,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST a request body as given (e.g. a fixture), with headers signed by the dendrite as usual.

    No subnet synapse sets required_hash_fields, so the signature does not cover the body. A dict body gets
    the fields the dendrite always adds (name, timeout, dendrite, axon terminal info).
    """
    signed = dendrite.preprocess_synapse_for_request(gateway.axon.info(), synapse_class(), timeout)
    if isinstance(body, dict):
        envelope = signed.model_dump(include={"name", "timeout", "dendrite", "axon"})
        envelope["name"] = synapse_class.__name__
        body = json.dumps({**envelope, **body})
    headers = {**signed.to_headers(), "content-type": "application/json"}
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"http://127.0.0.1:{gateway.settings.axon_port}/{synapse_class.__name__}",
            content=body,
            headers=headers,
            timeout=timeout,
        )
