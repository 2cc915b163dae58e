"""Crash safety, concurrency, retries, dead letters and outages, on real Valkey and real SeaweedFS."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from janitor_svc.schedule import DeletionSchedule
from janitor_svc.worker import BatchDeleter, DeletionWorker
from mesh.config import S3Settings
from mesh.v1 import janitor_pb2, janitor_pb2_grpc
from tests.conftest import janitor_test_settings
from tests.janitor_svc.conftest import put_object
from tests.janitor_svc.tcp_proxy import TcpProxy


class CountingDeleter(BatchDeleter):
    """The real S3 deleter, counting every key it is asked to delete."""

    def __init__(self, store, counts: Counter) -> None:
        super().__init__(store)
        self.counts = counts

    def delete(self, bucket, keys):
        self.counts.update(keys)
        return super().delete(bucket, keys)


def _worker(schedule, store, counts, **overrides) -> DeletionWorker:
    return DeletionWorker(schedule, CountingDeleter(store, counts), janitor_test_settings(**overrides))


async def _health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    return reply.status


async def _wait_for(predicate, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {within} s"
        await asyncio.sleep(0.05)


async def test_worker_dying_mid_lease_loses_nothing_and_deletes_once(redis_client, store):
    schedule = DeletionSchedule(redis_client)
    key = put_object(store, "crash.mp4")
    await schedule.schedule(store.bucket, key, time.time())
    # A worker claims the item with a 1 s lease and dies before deleting or acknowledging.
    dead_claim = await schedule.claim(time.time(), limit=10, lease_seconds=1.0)
    assert [item.key for item in dead_claim.items] == [key]

    counts: Counter = Counter()
    successor = _worker(schedule, store, counts)
    assert (await successor.drain()).deleted == 0, "a leased item was claimed twice"
    assert store.exists(key)
    await asyncio.sleep(1.1)
    assert (await successor.drain()).deleted == 1
    assert not store.exists(key)
    # The dead worker's late acknowledgement is fenced off and changes nothing.
    assert await schedule.ack(dead_claim, dead_claim.items) == 0
    assert (await successor.drain()).deleted == 0
    assert counts == Counter({key: 1})
    assert await schedule.pending() == 0


async def test_concurrent_workers_never_delete_the_same_item_twice(redis_client, store):
    schedule = DeletionSchedule(redis_client)
    keys = [put_object(store, f"many/{index}.mp4") for index in range(120)]
    now = time.time()
    for key in keys:
        await schedule.schedule(store.bucket, key, now)
    counts: Counter = Counter()
    workers = [_worker(schedule, store, counts, batch_size=7, delete_concurrency=3) for _ in range(3)]
    reports = await asyncio.gather(*(worker.drain() for worker in workers))
    assert sum(report.deleted for report in reports) == len(keys)
    assert counts == Counter({key: 1 for key in keys})
    assert not any(store.exists(key) for key in keys[::20])


async def test_failed_deletes_back_off_then_land_in_the_dead_letter_set(redis_client, store):
    """A bucket removed after scheduling makes every delete fail with a real S3 error."""
    store.ensure_bucket("janitor-doomed")
    schedule = DeletionSchedule(redis_client)
    await schedule.schedule("janitor-doomed", "lost.mp4", 1000.0)
    store.client.remove_bucket("janitor-doomed")
    clock = [1000.0]
    worker = DeletionWorker(schedule, BatchDeleter(store),
                            janitor_test_settings(max_attempts=3, backoff_seconds=10, backoff_max_seconds=100),
                            clock=lambda: clock[0])
    assert (await worker.drain()).failed == 1
    first = (await schedule.page(dead_letter=False, size=10)).entries
    assert [(entry.attempts, entry.due) for entry in first] == [(1, 1010.0)]
    assert "NoSuchBucket" in first[0].last_error
    clock[0] = 1009.0
    assert (await worker.drain()).failed == 0, "retried before its backoff elapsed"
    clock[0] = 1010.0
    assert (await worker.drain()).failed == 1
    assert (await schedule.page(dead_letter=False, size=10)).entries[0].due == 1030.0, "backoff did not double"
    clock[0] = 1030.0
    assert (await worker.drain()).dead_lettered == 1
    assert (await schedule.page(dead_letter=False, size=10)).total == 0
    dead = await schedule.page(dead_letter=True, size=10)
    assert [(e.bucket, e.key, e.attempts) for e in dead.entries] == [("janitor-doomed", "lost.mp4", 3)]
    assert "NoSuchBucket" in dead.entries[0].last_error
    # Scheduling a dead letter again gives it a fresh start.
    assert await schedule.schedule("janitor-doomed", "lost.mp4", 2000.0)
    assert (await schedule.page(dead_letter=True, size=10)).total == 0
    assert (await schedule.page(dead_letter=False, size=10)).entries[0].attempts == 0


async def test_dead_letters_are_listed_over_grpc(start_janitor, store):
    store.ensure_bucket("janitor-doomed2")
    server = await start_janitor(max_attempts=2, backoff_seconds=0.05, backoff_max_seconds=0.05)
    address = f"127.0.0.1:{server.host.port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = janitor_pb2_grpc.JanitorStub(channel)
        await stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(
            bucket="janitor-doomed2", object_key="gone.mp4", delay={"seconds": 0, "nanos": 300_000_000}), timeout=5)
        store.client.remove_bucket("janitor-doomed2")

        async def dead_lettered() -> bool:
            reply = await stub.ListPending(janitor_pb2.ListPendingRequest(dead_letter=True), timeout=5)
            return reply.total == 1

        await _wait_for(dead_lettered, within=3, what="dead-lettering")
        reply = await stub.ListPending(janitor_pb2.ListPendingRequest(dead_letter=True), timeout=5)
    item = reply.deletions[0]
    assert (item.bucket, item.object_key, item.attempts) == ("janitor-doomed2", "gone.mp4", 2)
    assert "NoSuchBucket" in item.last_error


async def test_s3_outage_turns_health_off_then_deletion_resumes(start_janitor, s3_server, s3_settings, store):
    host, port = s3_server.endpoint.split(":")
    proxy = await TcpProxy(host, int(port)).start()
    via_proxy = S3Settings(**{**s3_settings.model_dump(), "endpoint": proxy.address})
    server = await start_janitor(s3=via_proxy, max_attempts=2)
    address = f"127.0.0.1:{server.host.port}"
    assert await _health(address) == health_pb2.HealthCheckResponse.SERVING
    key = put_object(store, "outage.mp4")
    await proxy.cut()
    await server.janitor.schedule_deletion("", key, delay=0.2)

    async def not_serving() -> bool:
        return await _health(address) == health_pb2.HealthCheckResponse.NOT_SERVING

    await _wait_for(not_serving, within=3, what="NOT_SERVING during the S3 outage")
    await asyncio.sleep(1.0)
    assert store.exists(key)
    dead = await server.schedule.page(dead_letter=True, size=10)
    assert dead.total == 0, "an outage must not use up the retry budget"

    await proxy.start()

    async def serving() -> bool:
        return await _health(address) == health_pb2.HealthCheckResponse.SERVING

    await _wait_for(serving, within=3, what="SERVING after S3 came back")

    async def deleted() -> bool:
        return not store.exists(key)

    await _wait_for(deleted, within=3, what="deletion after S3 came back")
    await proxy.cut()


async def test_redis_outage_turns_health_off_then_scheduling_resumes(start_janitor, valkey, store):
    proxy = await TcpProxy("127.0.0.1", valkey.port).start()
    server = await start_janitor(redis=f"redis://{proxy.address}/0")
    address = f"127.0.0.1:{server.host.port}"
    assert await _health(address) == health_pb2.HealthCheckResponse.SERVING
    await proxy.cut()

    async def not_serving() -> bool:
        return await _health(address) == health_pb2.HealthCheckResponse.NOT_SERVING

    await _wait_for(not_serving, within=3, what="NOT_SERVING during the Redis outage")

    async with grpc.aio.insecure_channel(address) as channel:
        stub = janitor_pb2_grpc.JanitorStub(channel)
        request = janitor_pb2.ScheduleDeletionRequest(object_key=put_object(store, "r.mp4"),
                                                      delay={"nanos": 100_000_000})
        try:
            await stub.ScheduleDeletion(request, timeout=8)
            raise AssertionError("scheduling succeeded without Redis")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
        await proxy.start()

        async def serving() -> bool:
            return await _health(address) == health_pb2.HealthCheckResponse.SERVING

        await _wait_for(serving, within=5, what="SERVING after Redis came back")
        await stub.ScheduleDeletion(request, timeout=5)

        async def deleted() -> bool:
            return not store.exists(request.object_key)

        await _wait_for(deleted, within=3, what="deletion after Redis came back")
    await proxy.cut()
