"""The pool on gRPC's own mechanisms, over real servers on loopback: a `dns:///` group of two replicas (one on
127.0.0.1, one on [::1], the same port: gRPC's default c-ares resolver gives both for `localhost`, as RFC 6761
asks), client-side health checking over the health Watch stream, the channel's retry of refused calls, and
the servers' maximum connection age."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from mesh.config import ConfigError, load_settings
from miner_gateway.config import GatewaySettings
from miner_gateway.dispatch import Dispatcher
from miner_gateway.items import CompressItem
from miner_gateway.pool import COMPRESSOR_SERVICE, EndpointPool
from tests.miner_gateway.scripted import Backend, dual_stack, result_url, start_backend


def compress(*behaviours: str) -> list[CompressItem]:
    return [CompressItem(index, f"https://v.test/{behaviour}/{index}.mp4", 89.0, "hevc", "CRF", 5.0)
            for index, behaviour in enumerate(behaviours)]


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


class Scripted:
    """A scripted backend as `dual_stack` wants it (`port`, `stop`)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.port = backend.host.port

    async def stop(self) -> None:
        await self.backend.host.stop(0)


@pytest.fixture()
async def group():
    """Two scripted replicas behind `dns:///localhost:PORT`, and one pool on that group."""
    opened: list = []

    async def start(name: str = "") -> tuple[Backend, Backend, EndpointPool]:
        async def one(bind: str, port: int) -> Scripted:
            return Scripted(await start_backend(f"{name}{bind}", bind=bind, port=port))

        first, second = await dual_stack(one)
        pool = EndpointPool(COMPRESSOR_SERVICE, [f"dns:///localhost:{first.port}"])
        opened.extend([first, second, pool])
        await pool.start()
        return first.backend, second.backend, pool

    yield start
    for thing in reversed(opened):
        await (thing.close() if isinstance(thing, EndpointPool) else thing.stop())


async def until_both_connected(dispatcher: Dispatcher, *replicas: Backend) -> None:
    """round_robin picks only connected addresses: one call at a time until each replica has had one (the
    group's channel turns READY with its first connection), then forget those calls."""
    for attempt in range(50):
        if all(replica.script.requests for replica in replicas):
            break
        assert await dispatcher.compress(compress("ok"), soon(), f"warm{attempt}") == [result_url(f"warm{attempt}-0")]
        await asyncio.sleep(0.02)
    for replica in replicas:
        assert replica.script.requests, f"{replica.address} never got a call"
        replica.script.requests.clear()


async def test_a_dns_group_spreads_calls_over_both_addresses_and_skips_a_not_serving_one(group) -> None:
    v4, v6, pool = await group()
    assert pool.endpoints[0].healthy
    dispatcher = Dispatcher(None, pool)
    await until_both_connected(dispatcher, v4, v6)
    assert await dispatcher.compress(compress(*["ok"] * 6), soon(), "both") == [result_url(f"both-{i}")
                                                                                  for i in range(6)]
    assert len(v4.script.requests) == 3 and len(v6.script.requests) == 3, "round_robin over the two addresses"
    v4.script.requests.clear()
    v6.script.requests.clear()

    await v4.host.set_serving(False)
    await asyncio.sleep(0.5)  # the Watch stream pushes NOT_SERVING within milliseconds; no prober runs anywhere
    assert await dispatcher.compress(compress(*["ok"] * 6), soon(), "one") == [result_url(f"one-{i}")
                                                                                for i in range(6)]
    assert v4.script.requests == [] and len(v6.script.requests) == 6
    assert pool.endpoints[0].healthy, "one SERVING replica keeps the group READY"

    await v6.host.set_serving(False)
    await asyncio.wait_for(pool.endpoints[0].channel.wait_for_state_change(grpc.ChannelConnectivity.READY), 1)
    assert pool.endpoints[0].state == grpc.ChannelConnectivity.TRANSIENT_FAILURE
    assert await dispatcher.compress(compress("ok"), soon(0.5), "none") == [""]
    assert len(v4.script.requests) + len(v6.script.requests) == 6, "no call reaches a NOT_SERVING replica"


async def test_unavailable_before_any_event_is_retried_by_the_channel_on_the_other_replica(group, spans) -> None:
    v4, v6, pool = await group()
    await until_both_connected(Dispatcher(None, pool), v4, v6)
    v4.script.refuse = grpc.StatusCode.UNAVAILABLE
    spans.clear()
    urls = await Dispatcher(None, pool).compress(compress(*["ok"] * 4), soon(), "r")
    assert urls == [result_url(f"r-{i}") for i in range(4)]
    assert v4.script.requests, "round_robin sent some first attempts to the refusing replica"
    assert len(v6.script.requests) == 4
    refused = [event for span in spans.get_finished_spans() if span.name == "mesh.item"
               for event in span.events if event.name == "refused"]
    assert refused == [], "gRPC's retry policy moved them; the pool never saw a refusal"


def established(port: int) -> set[str]:
    """The peers (client address:port) of established TCP connections to the local `port`."""
    peers = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                peers.add(fields[2])
    return peers


async def test_connections_are_renewed_at_the_max_age_and_a_longer_call_is_not_cut() -> None:
    backend = await start_backend("aging", max_connection_age_seconds=0.3)
    pool = EndpointPool(COMPRESSOR_SERVICE, [backend.address])
    try:
        await pool.start()
        held = asyncio.create_task(Dispatcher(None, pool).compress(compress("hold"), soon(10), "held"))
        seen: set[str] = set()
        most = 0
        until = soon(2.0)
        while time.monotonic() < until:
            now = established(backend.host.port)
            seen |= now
            most = max(most, len(now))
            await asyncio.sleep(0.02)
        assert len(seen) >= 4, "the server sent GOAWAY at its max age and the client opened new connections"
        assert most <= 4 < len(seen), "old connections close (their health Watch does not pin them)"
        assert not held.done()
        backend.script.release.set()
        assert await held == [result_url("held-0")], "the call outlived several connection ages"
        assert len(backend.script.requests) == 1
        for _ in range(100):
            if (left := len(established(backend.host.port))) == 1:
                break
            await asyncio.sleep(0.02)
        assert left == 1, "once the held call ended, only the current connection is left"
    finally:
        await pool.close()
        await backend.host.stop(0)


def test_endpoint_settings_take_replicas_and_dns_groups_and_name_a_bad_one() -> None:
    hotkey = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    addresses = "dns:///compressor-headless.mesh.svc:29116, 10.0.0.5:29116,[fd00::5]:29116"
    settings = load_settings(GatewaySettings, _env_file=None, network="local", validator_hotkeys=hotkey,
                             warrant_task="COMPRESSION", compressor_addrs=addresses)
    assert settings.compressor_addrs == ["dns:///compressor-headless.mesh.svc:29116", "10.0.0.5:29116",
                                         "[fd00::5]:29116"]
    for bad in ("compressor", "http://compressor:29116", "dns:///compressor", "a:1;rm -rf /"):
        with pytest.raises(ConfigError) as failure:
            load_settings(GatewaySettings, _env_file=None, network="local", validator_hotkeys=hotkey,
                          warrant_task="COMPRESSION", compressor_addrs=bad)
        assert "GATEWAY_COMPRESSOR_ADDRS" in str(failure.value) and "dns:///host:port" in str(failure.value)
    with pytest.raises(ValueError, match="not a gRPC target"):
        EndpointPool(COMPRESSOR_SERVICE, ["compressor:29116\n"])
