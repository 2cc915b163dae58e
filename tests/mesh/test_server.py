"""ServiceHost on a real loopback grpc.aio server: health gating, reflection, graceful drain, healthcheck CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.healthcheck import NotServing, check, wait_serving
from mesh.server import ServiceHost
from mesh.v1 import janitor_pb2, janitor_pb2_grpc

SERVICE = "mesh.v1.Janitor"


class SlowSweeper(janitor_pb2_grpc.JanitorServicer):
    """A stand-in servicer whose RunSweep takes a moment, to observe in-flight calls during a drain."""

    async def RunSweep(self, request, context):
        await asyncio.sleep(0.5)
        return janitor_pb2.RunSweepResponse(objects_deleted=7)


@pytest.fixture()
async def host():
    service_host = ServiceHost("127.0.0.1", 0, drain_seconds=2)
    service_host.add_service(janitor_pb2.DESCRIPTOR.services_by_name["Janitor"],
                             janitor_pb2_grpc.add_JanitorServicer_to_server, SlowSweeper())
    await service_host.start()
    yield service_host
    await service_host.stop(0)


async def _status(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                timeout=3)
    return reply.status


async def test_health_is_not_serving_until_the_service_says_ready(host):
    address = f"127.0.0.1:{host.port}"
    assert host.port > 0
    for service in ("", SERVICE):
        assert await _status(address, service) == health_pb2.HealthCheckResponse.NOT_SERVING
    await host.set_serving(True)
    for service in ("", SERVICE):
        assert await _status(address, service) == health_pb2.HealthCheckResponse.SERVING
    await host.set_serving(False)
    assert await _status(address) == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_stop_lets_in_flight_calls_finish_and_refuses_new_ones(host):
    address = f"127.0.0.1:{host.port}"
    await host.set_serving(True)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = janitor_pb2_grpc.JanitorStub(channel)
        in_flight = asyncio.ensure_future(stub.RunSweep(janitor_pb2.RunSweepRequest(), timeout=5))
        await asyncio.sleep(0.1)
        await host.stop()
        assert (await in_flight).objects_deleted == 7
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await janitor_pb2_grpc.JanitorStub(channel).RunSweep(janitor_pb2.RunSweepRequest(), timeout=2)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_unimplemented_methods_answer_unimplemented(host):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await janitor_pb2_grpc.JanitorStub(channel).ListPending(janitor_pb2.ListPendingRequest(), timeout=2)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_healthcheck_module_reports_each_state(host):
    address = f"127.0.0.1:{host.port}"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mesh.healthcheck", *args], capture_output=True, text=True,
                              timeout=30)

    not_ready = await asyncio.to_thread(run, address)
    assert (not_ready.returncode, not_ready.stdout.strip()) == (1, "NOT_SERVING")
    await host.set_serving(True)
    ready = await asyncio.to_thread(run, address, SERVICE)
    assert (ready.returncode, ready.stdout.strip()) == (0, "SERVING")
    assert await asyncio.to_thread(check, address, "mesh.v1.Nope") == "UNKNOWN_SERVICE"
    await host.stop(0)
    gone = await asyncio.to_thread(run, address, "--timeout", "1")
    assert (gone.returncode, gone.stdout.strip()) == (1, "UNREACHABLE")


async def test_wait_serving_returns_once_ready_and_gives_up_on_death_or_timeout(host):
    address = f"127.0.0.1:{host.port}"
    with pytest.raises(NotServing, match="stopped before"):
        await asyncio.to_thread(wait_serving, address, timeout=30, alive=lambda: False)
    with pytest.raises(NotServing, match="within 0.3 s"):
        await asyncio.to_thread(wait_serving, address, timeout=0.3)
    asyncio.get_running_loop().call_later(0.3, lambda: asyncio.ensure_future(host.set_serving(True)))
    await asyncio.to_thread(wait_serving, address, service=SERVICE, timeout=10)
    assert await _status(address, SERVICE) == health_pb2.HealthCheckResponse.SERVING
