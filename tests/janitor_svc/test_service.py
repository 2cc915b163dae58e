"""mesh.v1.Janitor over real gRPC on loopback, deleting from real SeaweedFS with the schedule in real Valkey."""

from __future__ import annotations

import asyncio
import os
import time

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mesh.storage import ObjectStore
from mesh.v1 import janitor_pb2, janitor_pb2_grpc
from tests.janitor_svc.conftest import put_object


def _delay(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds), nanos=int(round(seconds % 1 * 1e9)))


def _at(epoch_seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(epoch_seconds * 1e9))
    return stamp


@pytest.fixture()
def stub(janitor_address):
    with grpc.insecure_channel(janitor_address) as channel:
        yield janitor_pb2_grpc.JanitorStub(channel)


def _wait_gone(store: ObjectStore, key: str, within: float) -> float:
    start = time.monotonic()
    while store.exists(key):
        if time.monotonic() - start > within:
            pytest.fail(f"{key} still exists after {within} s")
        time.sleep(0.02)
    return time.monotonic() - start


def test_health_is_serving_and_reflection_lists_janitor(janitor_address):
    with grpc.insecure_channel(janitor_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "mesh.v1.Janitor"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                  timeout=5)
        names = {service.name for reply in replies for service in reply.list_services_response.service}
    assert {"mesh.v1.Janitor", "grpc.health.v1.Health"} <= names


def test_scheduled_object_is_gone_within_two_seconds(stub, store):
    key = put_object(store, "results/clip.mp4")
    before = time.time()
    reply = stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(object_key=key, delay=_delay(0.5)), timeout=5)
    due = reply.delete_at.ToNanoseconds() / 1e9
    assert before + 0.5 <= due <= time.time() + 0.5
    assert not reply.replaced
    assert store.exists(key), "deleted before its due time"
    _wait_gone(store, key, within=2.0)
    assert stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5).total == 0


def test_absolute_due_time_in_another_bucket(stub, store):
    store.ensure_bucket("janitor-other")
    key = put_object(store, "x.mp4", bucket="janitor-other")
    stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(bucket="janitor-other", object_key=key,
                                                              delete_at=_at(time.time() + 0.3)), timeout=5)
    start = time.monotonic()
    while store.exists(key, bucket="janitor-other"):
        assert time.monotonic() - start < 2.0, "object in the second bucket was not deleted"
        time.sleep(0.02)


def test_cancel_keeps_the_object(stub, store):
    key = put_object(store, "keep.mp4")
    stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(object_key=key, delay=_delay(0.5)), timeout=5)
    reply = stub.CancelDeletion(janitor_pb2.CancelDeletionRequest(object_key=key), timeout=5)
    assert reply.cancelled
    time.sleep(1.2)
    assert store.exists(key)
    again = stub.CancelDeletion(janitor_pb2.CancelDeletionRequest(object_key=key), timeout=5)
    assert not again.cancelled


def test_rescheduling_is_idempotent_and_moves_the_due_time(stub, store):
    key = put_object(store, "twice.mp4")
    first = stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(object_key=key, delay=_delay(3600)), timeout=5)
    second = stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(object_key=key, delay=_delay(7200)),
                                   timeout=5)
    assert not first.replaced and second.replaced
    listing = stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5)
    assert listing.total == 1
    assert listing.deletions[0].delete_at == second.delete_at
    stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(object_key=key, delay=_delay(0.2)), timeout=5)
    _wait_gone(store, key, within=2.0)


def test_listing_pages_through_every_item_once_in_due_order(stub, store):
    keys = [f"page/{index:02d}.mp4" for index in range(23)]
    for index, key in enumerate(keys):
        stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(object_key=key, delay=_delay(600 + index)),
                              timeout=5)
    seen, token, pages = [], "", 0
    while True:
        page = stub.ListPending(janitor_pb2.ListPendingRequest(page_size=10, page_token=token), timeout=5)
        assert page.total == 23 - pages
        seen += [item.object_key for item in page.deletions]
        pages += 1
        token = page.next_page_token
        if not token:
            break
        # A removal between pages must neither shift nor repeat the rest of the listing.
        stub.CancelDeletion(janitor_pb2.CancelDeletionRequest(object_key=seen[pages - 1]), timeout=5)
    assert pages == 3
    assert seen == keys
    assert all(item.bucket == store.bucket for item in page.deletions)


BAD_REQUESTS = {
    "empty key": janitor_pb2.ScheduleDeletionRequest(object_key="", delay=_delay(1)),
    "no due time": janitor_pb2.ScheduleDeletionRequest(object_key="a.mp4"),
    "negative delay": janitor_pb2.ScheduleDeletionRequest(object_key="a.mp4", delay=duration_pb2.Duration(seconds=-5)),
    "absurd delay": janitor_pb2.ScheduleDeletionRequest(object_key="a.mp4", delay=_delay(31 * 24 * 3600)),
    "overflowing delay": janitor_pb2.ScheduleDeletionRequest(object_key="a.mp4",
                                                             delay=duration_pb2.Duration(seconds=10**15)),
    "past due time": janitor_pb2.ScheduleDeletionRequest(object_key="a.mp4", delete_at=_at(time.time() - 3600)),
    "far future due time": janitor_pb2.ScheduleDeletionRequest(
        object_key="a.mp4", delete_at=timestamp_pb2.Timestamp(seconds=10**13)),
    "unknown bucket": janitor_pb2.ScheduleDeletionRequest(bucket="no-such-bucket", object_key="a.mp4",
                                                          delay=_delay(1)),
    "malformed bucket": janitor_pb2.ScheduleDeletionRequest(bucket="Bad_Bucket!", object_key="a.mp4",
                                                            delay=_delay(1)),
    "oversized key": janitor_pb2.ScheduleDeletionRequest(object_key="k" * 1025, delay=_delay(1)),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_schedule_requests_are_invalid_argument(stub, case):
    with pytest.raises(grpc.RpcError) as caught:
        stub.ScheduleDeletion(BAD_REQUESTS[case], timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details()
    assert stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5).total == 0


def _batch(keys: list[str], seconds: float) -> janitor_pb2.ScheduleDeletionsRequest:
    return janitor_pb2.ScheduleDeletionsRequest(
        deletions=[janitor_pb2.ScheduleDeletionRequest(object_key=key, delay=_delay(seconds))
                   for key in keys])


def test_batch_of_objects_is_gone_within_a_few_seconds(stub, store):
    keys = [put_object(store, f"batch/{index:02d}.mp4") for index in range(50)]
    before = time.time()
    reply = stub.ScheduleDeletions(_batch(keys, 0.5), timeout=5)
    assert len(reply.results) == len(keys)
    assert not any(result.replaced for result in reply.results)
    assert all(before + 0.5 <= result.delete_at.ToNanoseconds() / 1e9 <= time.time() + 0.5
               for result in reply.results)
    assert stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5).total == len(keys)
    for key in keys:
        _wait_gone(store, key, within=3.0)
    assert stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5).total == 0


def test_batch_reports_replaced_per_item_in_request_order(stub):
    stub.ScheduleDeletions(_batch(["a.mp4", "b.mp4"], 3600), timeout=5)
    reply = stub.ScheduleDeletions(_batch(["c.mp4", "b.mp4", "d.mp4", "a.mp4"], 7200), timeout=5)
    assert [result.replaced for result in reply.results] == [False, True, False, True]
    listing = stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5)
    assert listing.total == 4
    due_times = {item.object_key: item.delete_at for item in listing.deletions}
    assert due_times["a.mp4"] == reply.results[3].delete_at


def test_duplicate_key_in_a_batch_is_scheduled_once_with_the_later_due_time(stub):
    reply = stub.ScheduleDeletions(janitor_pb2.ScheduleDeletionsRequest(deletions=[
        janitor_pb2.ScheduleDeletionRequest(object_key="dup.mp4", delay=_delay(7200)),
        janitor_pb2.ScheduleDeletionRequest(object_key="dup.mp4", delay=_delay(3600))]), timeout=5)
    assert [result.replaced for result in reply.results] == [False, True]
    listing = stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5)
    assert listing.total == 1
    assert listing.deletions[0].delete_at == reply.results[1].delete_at


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_one_bad_item_rejects_the_whole_batch_naming_its_index(stub, case):
    stub.ScheduleDeletions(_batch(["earlier.mp4"], 600), timeout=5)
    batch = _batch(["first.mp4", "second.mp4"], 600)
    batch.deletions.append(BAD_REQUESTS[case])
    with pytest.raises(grpc.RpcError) as caught:
        stub.ScheduleDeletions(batch, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "deletions[2]" in caught.value.details()
    listing = stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5)
    assert [item.object_key for item in listing.deletions] == ["earlier.mp4"]


def test_batch_size_is_one_to_a_thousand(stub):
    keys = [f"many/{index:04d}.mp4" for index in range(1001)]
    for request_ in (_batch([], 600), _batch(keys, 600)):
        with pytest.raises(grpc.RpcError) as caught:
            stub.ScheduleDeletions(request_, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5).total == 0
    assert len(stub.ScheduleDeletions(_batch(keys[:1000], 600), timeout=5).results) == 1000
    assert stub.ListPending(janitor_pb2.ListPendingRequest(), timeout=5).total == 1000


async def test_batch_wakes_a_sleeping_worker_for_its_earliest_due_time(start_janitor, store):
    server = await start_janitor(idle_poll_seconds=5)
    await asyncio.sleep(0.3)  # the first pass is over: the loop sleeps for 5 s unless woken
    key = put_object(store, "early.mp4")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.host.port}") as channel:
        stub = janitor_pb2_grpc.JanitorStub(channel)
        await stub.ScheduleDeletions(janitor_pb2.ScheduleDeletionsRequest(deletions=[
            janitor_pb2.ScheduleDeletionRequest(object_key="late.mp4", delay=_delay(600)),
            janitor_pb2.ScheduleDeletionRequest(object_key=key, delay=_delay(0.2))]), timeout=5)
    start = time.monotonic()
    while store.exists(key):
        assert time.monotonic() - start < 2.0, "the batch did not wake the deletion loop"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("request_", [janitor_pb2.ListPendingRequest(page_token="not-a-token"),
                                      janitor_pb2.ListPendingRequest(page_size=5000)], ids=["bad token", "huge page"])
def test_bad_listing_requests_are_invalid_argument(stub, request_):
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListPending(request_, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_run_sweep_deletes_due_objects_and_old_temp_files(start_janitor, store, tmp_path, monkeypatch):
    server = await start_janitor(temp_dirs=[tmp_path], temp_ttl_seconds=3600, temp_grace_seconds=60,
                                 idle_poll_seconds=5, sweep_interval_seconds=3600)
    # Let the background loop finish its first pass and sleep (5 s, not woken by schedules), so that the
    # deletion below is RunSweep's own.
    monkeypatch.setattr(server.worker, "notify_due", lambda due: None)
    await asyncio.sleep(0.3)
    old = tmp_path / "old.part"
    old.write_bytes(b"y" * 100)
    stale = time.time() - 7200
    os.utime(old, (stale, stale))
    fresh = tmp_path / "fresh.part"
    fresh.write_bytes(b"z")
    key = put_object(store, "sweep.mp4")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.host.port}") as channel:
        stub = janitor_pb2_grpc.JanitorStub(channel)
        await stub.ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(object_key=key, delete_at=_at(time.time())),
                                    timeout=5)
        reply = await stub.RunSweep(janitor_pb2.RunSweepRequest(), timeout=10)
    assert (reply.objects_deleted, reply.objects_failed) == (1, 0)
    assert not store.exists(key)
    assert (reply.temp_files_removed, reply.temp_bytes_freed) == (1, 100)
    assert not old.exists() and fresh.exists()
