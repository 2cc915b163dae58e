"""The shared media-job runtime without gRPC: the bounded queue and the job-id rule."""

from __future__ import annotations

import asyncio

import pytest

from mesh.errors import Busy, InvalidInput
from mesh.jobs import JobQueue, job_id_or_new


async def test_job_queue_admits_concurrency_plus_waiting_then_refuses():
    queue = JobQueue("test", concurrency=1, queue_size=1)
    release = asyncio.Event()
    order = []

    async def job(name: str) -> None:
        async with queue.slot():
            order.append(name)
            await release.wait()

    first, second = asyncio.create_task(job("a")), asyncio.create_task(job("b"))
    await asyncio.sleep(0.05)
    assert order == ["a"] and queue.pending == 2
    with pytest.raises(Busy):
        async with queue.slot():
            pass
    release.set()
    await asyncio.gather(first, second)
    assert order == ["a", "b"] and queue.pending == 0




def test_job_ids_are_checked_or_made():
    assert job_id_or_new("e2e-av1.v2_3") == "e2e-av1.v2_3"
    assert len(job_id_or_new("")) == 16
    for bad in ("../etc", "a/b", "x" * 65, "sp ace"):
        with pytest.raises(InvalidInput, match="job_id"):
            job_id_or_new(bad)
