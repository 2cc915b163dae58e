"""Organic jobs on a real Valkey with a scripted backend: acceptance, polling, expiry and recovery."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mesh.embedded import free_port
from miner_gateway.dispatch import Dispatcher
from miner_gateway.jobs import JobRunner, JobStore, JobStoreUnavailable
from miner_gateway.pool import UPSCALER_SERVICE, EndpointPool
from miner_gateway.protocol import UpscalingMinerPayload
from tests.miner_gateway.scripted import result_url

JOB = "5b0c7a62-3c1f-4f0e-9a7b-2d4e6f8a0b1c"


def payload(*behaviours: str) -> UpscalingMinerPayload:
    return UpscalingMinerPayload(
        reference_video_urls=[f"https://v.test/{b}/{i}.mp4" for i, b in enumerate(behaviours)],
        task_types=["SD2HD"],
    )


@pytest.fixture()
async def client(redis_url):
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


@pytest.fixture()
async def dispatcher(backend):
    pool = EndpointPool(UPSCALER_SERVICE, [backend.address])
    await pool.start()
    yield Dispatcher(pool, None)
    await pool.close()


@pytest.fixture()
async def make_runner(client, dispatcher):
    """Runners sharing one Redis, as gateway processes before and after a restart would."""
    runners: list[JobRunner] = []

    def make(ttl: int = 600, timeout: float = 60.0, lease: float = 1.0, max_attempts: int = 3) -> JobRunner:
        store = JobStore(client, ttl_seconds=ttl, lease_seconds=lease)
        runner = JobRunner(
            store, dispatcher, timeout_seconds=timeout, lease_seconds=lease, max_attempts=max_attempts
        )
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.close()


async def wait_for_status(runner: JobRunner, status: str, job_id: str = JOB, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        polled = await runner.poll(job_id, "upscaling")
        if polled[0] == status:
            return polled
        await asyncio.sleep(0.02)
    raise AssertionError(f"job never became {status}; last poll {polled}")


async def wait_for(condition, seconds: float = 5.0) -> None:
    """Wait until `condition()` (a value or an awaitable) is true."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_job_runs_in_the_background_and_poll_follows_it(make_runner, backend) -> None:
    runner = make_runner()
    assert await runner.submit(JOB, "upscaling", payload("ok", "hold")) is True
    await wait_for(lambda: len(backend.script.requests) == 2)
    assert await runner.poll(JOB, "upscaling") == ("processing", [])
    backend.script.release.set()
    assert await wait_for_status(runner, "completed") == (
        "completed",
        [result_url(f"{JOB}-0"), result_url(f"{JOB}-1")],
    )


async def test_accepting_the_same_job_id_again_starts_nothing_new(make_runner, backend) -> None:
    runner = make_runner()
    assert await runner.submit(JOB, "upscaling", payload("hold")) is True
    assert await runner.submit(JOB, "upscaling", payload("hold")) is True
    backend.script.release.set()
    await wait_for_status(runner, "completed")
    assert await runner.submit(JOB, "upscaling", payload("hold")) is True
    assert len(backend.script.requests) == 1


async def test_unknown_invalid_and_mismatched_jobs(make_runner) -> None:
    runner = make_runner()
    assert await runner.poll("never-submitted", "upscaling") == ("failed", [])
    assert await runner.poll("", "upscaling") == ("failed", [])
    assert await runner.submit("", "upscaling", payload("ok")) is False
    assert await runner.submit("../../etc", "upscaling", payload("ok")) is False
    assert await runner.submit(JOB, "upscaling", UpscalingMinerPayload()) is False
    assert await runner.submit(JOB, "compression", payload("ok")) is False, "no compressor pool is configured"
    assert await runner.submit(JOB, "upscaling", payload("ok")) is True
    await wait_for_status(runner, "completed")
    assert await runner.poll(JOB, "compression") == ("failed", [])


async def test_job_whose_items_all_fail_is_failed(make_runner) -> None:
    runner = make_runner()
    await runner.submit(JOB, "upscaling", payload("fail", "noresult"))
    assert await wait_for_status(runner, "failed") == ("failed", ["", ""])


async def test_results_expire_after_the_ttl(make_runner, client) -> None:
    runner = make_runner(ttl=1)
    await runner.submit(JOB, "upscaling", payload("ok"))
    await wait_for_status(runner, "completed")
    assert 0 < await client.pttl(f"gateway:job:{JOB}") <= 1000
    await asyncio.sleep(1.1)
    assert await runner.poll(JOB, "upscaling") == ("failed", [])


async def test_stopped_runner_releases_its_job_and_the_next_resumes_only_unfinished_items(
    make_runner, backend, client
) -> None:
    first = make_runner()
    await first.submit(JOB, "upscaling", payload("ok", "hold"))
    await wait_for(lambda: len(backend.script.requests) == 2)
    await wait_for(lambda: client.hexists(f"gateway:job:{JOB}", "item:0"))
    await first.close()
    await wait_for(lambda: backend.script.cancelled == 1)
    assert await first.poll(JOB, "upscaling") == ("processing", [])

    backend.script.release.set()
    second = make_runner()
    await second.recover()
    assert await wait_for_status(second, "completed") == (
        "completed",
        [result_url(f"{JOB}-0"), result_url(f"{JOB}-1")],
    )
    assert backend.script.sources() == [
        "https://v.test/ok/0.mp4",
        "https://v.test/hold/1.mp4",
        "https://v.test/hold/1.mp4",
    ]


async def test_job_held_by_a_live_runner_is_not_taken_over(make_runner, backend) -> None:
    owner = make_runner(lease=1.0)
    await owner.submit(JOB, "upscaling", payload("hold"))
    await asyncio.sleep(1.5)
    await make_runner(lease=1.0).recover()
    assert len(backend.script.requests) == 1, "the owner renewed its lease past the first second"
    backend.script.release.set()
    await wait_for_status(owner, "completed")


async def test_interrupted_job_past_its_deadline_is_finished_with_what_it_has(
    make_runner, client, backend
) -> None:
    store = JobStore(client, ttl_seconds=600, lease_seconds=1)
    await store.create(JOB, "upscaling", payload("ok", "ok").model_dump_json(), time.time() - 1, {})
    await store.record_item(JOB, 0, "https://results.test/kept.mp4")
    await make_runner().recover()
    assert await make_runner().poll(JOB, "upscaling") == ("completed", ["https://results.test/kept.mp4", ""])
    assert backend.script.requests == []


async def test_job_started_too_many_times_is_failed_not_resumed(make_runner, client, backend) -> None:
    store = JobStore(client, ttl_seconds=600, lease_seconds=1)
    await store.create(JOB, "upscaling", payload("ok").model_dump_json(), time.time() + 60, {})
    for _ in range(2):
        await store.begin_attempt(JOB)
    await make_runner(max_attempts=2).recover()
    assert await make_runner().poll(JOB, "upscaling") == ("failed", [""])
    assert backend.script.requests == []
    assert await client.sismember("gateway:jobs:active", JOB) == 0


async def test_unreachable_redis_is_job_store_unavailable_without_the_password(dispatcher, backend) -> None:
    """Redis refusing connections (a closed loopback port) is one clear error for the handler to answer,
    not a Redis exception for the axon to turn into HTTP 500; its message keeps the password out."""
    password = "s3cret-redis-pass"
    url = f"redis://:{password}@127.0.0.1:{free_port()}/0"
    unreachable = redis.Redis.from_url(url, decode_responses=True, retry=Retry(NoBackoff(), 1))
    try:
        runner = JobRunner(
            JobStore(unreachable, ttl_seconds=600, lease_seconds=1.0),
            dispatcher,
            timeout_seconds=60.0,
            lease_seconds=1.0,
            max_attempts=3,
        )
        for attempt in (runner.submit(JOB, "upscaling", payload("ok")), runner.poll(JOB, "upscaling")):
            with pytest.raises(JobStoreUnavailable, match=r"^ConnectionError: .*127\.0\.0\.1") as caught:
                await attempt
            assert password not in str(caught.value) and url not in str(caught.value)
        assert await runner.poll("../../etc", "upscaling") == ("failed", []), "an invalid id needs no store"
        await runner.close()
    finally:
        await unreachable.aclose()
    assert backend.script.requests == []
