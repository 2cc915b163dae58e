"""Janitor throughput and deletion lag on embedded Valkey + SeaweedFS.

    .venv/bin/python scripts/bench_janitor.py [--objects 10000] [--concurrency 64] [--delay 3] [--spread 0]
                                              [--batch-size 100] [--batch-concurrency 4]

1. Starts a real Valkey and a real SeaweedFS S3, uploads N tiny objects, and starts the janitor as its own
   process (`python -m janitor_svc`, default settings).
2. Baseline: the same number of empty unary RPCs (grpc.health.v1.Health/Check) at the same concurrency,
   the ceiling of gRPC on this machine.
3. Schedules every object through the gRPC API (ScheduleDeletion, delay = --delay + uniform(0, --spread)).
4. Deletion lag = time an object left the schedule (acknowledged after its S3 delete; watched with ZMSCORE
   every 20 ms while scheduling goes on) minus its due time. Every object is then checked gone from S3.
5. The same objects are uploaded again and scheduled in batches (ScheduleDeletions, --batch-size items per
   call, --batch-concurrency calls at a time), with the same lag measurement and check.
6. The same schedules straight into the gRPC-free core (DeletionSchedule), labelled "core".
7. The object store's own ceiling: the same objects uploaded again and removed straight through the S3 API
   with the janitor's default batch size and concurrency. N objects due at once cannot all be deleted
   sooner than N / ceiling seconds, whatever the janitor does.
Goals (issue 2): >= 5,000 schedules/s and p99 deletion lag <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from minio.deleteobjects import DeleteObject
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from janitor_svc.config import JanitorSettings  # noqa: E402
from janitor_svc.schedule import DeletionSchedule, member_of  # noqa: E402
from mesh.embedded import EmbeddedS3, EmbeddedValkey, free_port  # noqa: E402
from mesh.healthcheck import NotServing, wait_serving  # noqa: E402
from mesh.v1 import janitor_pb2, janitor_pb2_grpc  # noqa: E402

GOAL_SCHEDULES_PER_S = 5000
GOAL_P99_LAG_S = 1.0
POLL_SECONDS = 0.02


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def upload(s3: EmbeddedS3, keys: list[str]) -> float:
    client = s3.client()
    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(s3.bucket, key, io.BytesIO(b"x"), 1), keys))
    return time.perf_counter() - start


async def _run_concurrently(calls, concurrency: int) -> float:
    queue = iter(calls)

    async def lane() -> None:
        for call in queue:
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - start


async def empty_rpc_rate(address: str, count: int, concurrency: int) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        seconds = await _run_concurrently([lambda: stub.Check(request, timeout=30)] * count, concurrency)
    return count / seconds


class DeletionWatch:
    """Records when each scheduled object left the schedule (acknowledged after its S3 delete).

    Runs while scheduling goes on: objects whose due time has passed are polled with ZMSCORE every 20 ms,
    so the measurement is at most ~20 ms late and costs nothing for objects not yet due."""

    def __init__(self, redis: Redis, bucket: str) -> None:
        self.redis = redis
        self.bucket = bucket
        self.due: dict[str, float] = {}
        self.left: dict[str, float] = {}
        self._not_due: list[tuple[float, str]] = []

    def scheduled(self, key: str, due: float) -> None:
        self.due[key] = due
        heapq.heappush(self._not_due, (due, key))

    async def run(self, expected: int, timeout: float) -> None:
        outstanding: dict[str, str] = {}
        deadline = time.time() + timeout
        while len(self.left) < expected and time.time() < deadline:
            now = time.time()
            while self._not_due and self._not_due[0][0] <= now:
                key = heapq.heappop(self._not_due)[1]
                outstanding[member_of(self.bucket, key)] = key
            if outstanding:
                members = list(outstanding)
                scores = await self.redis.zmscore("janitor:due", members)
                now = time.time()
                for member, score in zip(members, scores):
                    if score is None:
                        self.left[outstanding.pop(member)] = now
            await asyncio.sleep(POLL_SECONDS)

    def lags(self) -> list[float]:
        return [self.left[key] - self.due[key] for key in self.left]


def _deletion(key: str, delay: float) -> janitor_pb2.ScheduleDeletionRequest:
    return janitor_pb2.ScheduleDeletionRequest(
        object_key=key, delay=duration_pb2.Duration(seconds=int(delay), nanos=int(delay % 1 * 1e9)))


async def schedule_over_grpc(address: str, keys: list[str], delays: list[float], concurrency: int,
                             watch: DeletionWatch) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = janitor_pb2_grpc.JanitorStub(channel)

        def call(key: str, delay: float):
            async def run() -> None:
                reply = await stub.ScheduleDeletion(_deletion(key, delay), timeout=30)
                watch.scheduled(key, reply.delete_at.ToNanoseconds() / 1e9)
            return run

        seconds = await _run_concurrently([call(key, delay) for key, delay in zip(keys, delays)], concurrency)
    return len(keys) / seconds


async def schedule_batches_over_grpc(address: str, keys: list[str], delays: list[float], batch_size: int,
                                     concurrency: int, watch: DeletionWatch) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = janitor_pb2_grpc.JanitorStub(channel)

        def call(batch_keys: list[str], batch_delays: list[float]):
            async def run() -> None:
                request = janitor_pb2.ScheduleDeletionsRequest(
                    deletions=[_deletion(key, delay) for key, delay in zip(batch_keys, batch_delays)])
                reply = await stub.ScheduleDeletions(request, timeout=30)
                for key, result in zip(batch_keys, reply.results):
                    watch.scheduled(key, result.delete_at.ToNanoseconds() / 1e9)
            return run

        calls = [call(keys[start:start + batch_size], delays[start:start + batch_size])
                 for start in range(0, len(keys), batch_size)]
        seconds = await _run_concurrently(calls, concurrency)
    return len(keys) / seconds


async def schedule_and_watch(redis: Redis, s3: EmbeddedS3, keys: list[str], timeout: float,
                             schedule_all) -> tuple[float, DeletionWatch, int]:
    """Run `schedule_all(watch)` while watching the deletions it causes; returns its schedules/s, the watch,
    and how many of the objects are still in S3 once all left the schedule (or the watch timed out)."""
    watch = DeletionWatch(redis, s3.bucket)
    watching = asyncio.create_task(watch.run(len(keys), timeout=timeout))
    rate = await schedule_all(watch)
    await watching
    remaining = sum(1 for _ in s3.client().list_objects(s3.bucket, prefix="bench/", recursive=True))
    return rate, watch, remaining


def store_delete_rate(s3: EmbeddedS3, keys: list[str]) -> float:
    """Objects/s of S3 DeleteObjects alone, batched and concurrent as the janitor's defaults are."""
    defaults = JanitorSettings.model_fields
    batch, lanes = defaults["batch_size"].default, defaults["delete_concurrency"].default
    client = s3.client()
    batches = [keys[start:start + batch] for start in range(0, len(keys), batch)]
    start = time.perf_counter()
    with ThreadPoolExecutor(lanes) as pool:
        errors = pool.map(lambda chunk: list(client.remove_objects(s3.bucket, [DeleteObject(k) for k in chunk])),
                          batches)
        if any(errors):
            raise RuntimeError("the object store refused deletes")
    return len(keys) / (time.perf_counter() - start)


async def schedule_core(redis_url: str, bucket: str, count: int, concurrency: int) -> float:
    redis = Redis.from_url(redis_url)
    schedule = DeletionSchedule(redis, prefix="bench-core")
    due = time.time() + 3600
    seconds = await _run_concurrently(
        [lambda index=index: schedule.schedule(bucket, f"core/{index}", due) for index in range(count)], concurrency)
    await redis.delete("bench-core:due")
    await redis.aclose()
    return count / seconds


def start_janitor(valkey: EmbeddedValkey, s3: EmbeddedS3, port: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": valkey.url, **s3.env(), "JANITOR_HOST": "127.0.0.1",
           "JANITOR_PORT": str(port), "JANITOR_LOG_LEVEL": "WARNING"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "janitor_svc"], env=env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_serving(f"127.0.0.1:{port}", timeout=30, alive=lambda: process.poll() is None)
    except NotServing as exc:
        raise RuntimeError(f"janitor did not start ({exc}):\n{log_path.read_text()[-2000:]}") from None
    return process


async def bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-janitor-"))
    keys = [f"bench/{index:06d}.mp4" for index in range(args.objects)]
    rng = random.Random(85)
    delays = [args.delay + rng.uniform(0, args.spread) for _ in keys]
    with EmbeddedValkey() as valkey, EmbeddedS3() as s3:
        upload_seconds = upload(s3, keys)
        port = free_port()
        janitor = start_janitor(valkey, s3, port, work / "janitor.log")
        address = f"127.0.0.1:{port}"
        redis = Redis.from_url(valkey.url)
        timeout = args.delay + args.spread + 300
        try:
            baseline = await empty_rpc_rate(address, args.objects, args.concurrency)
            single = await schedule_and_watch(
                redis, s3, keys, timeout,
                lambda watch: schedule_over_grpc(address, keys, delays, args.concurrency, watch))
            upload(s3, keys)
            batched = await schedule_and_watch(
                redis, s3, keys, timeout,
                lambda watch: schedule_batches_over_grpc(address, keys, delays, args.batch_size,
                                                         args.batch_concurrency, watch))
            core_rate = await schedule_core(valkey.url, s3.bucket, args.objects, args.concurrency)
            upload(s3, keys)
            store_rate = store_delete_rate(s3, keys)
        finally:
            await redis.aclose()
            janitor.terminate()
            janitor.wait(timeout=30)
            shutil.rmtree(work, ignore_errors=True)
    (rate, single_watch, single_remaining), (batched_rate, batched_watch, batched_remaining) = single, batched
    print(f"janitor benchmark: {args.objects} objects, {args.concurrency} concurrent calls, "
          f"delay {args.delay:g} s + uniform(0, {args.spread:g}) s, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  upload of the tiny objects (setup):        {args.objects / upload_seconds:8.0f} objects/s")
    print(f"  baseline, empty gRPC health checks:        {baseline:8.0f} calls/s")
    print(f"  ScheduleDeletion over gRPC:                {rate:8.0f} schedules/s "
          f"({rate / baseline:.2f}x the empty-RPC baseline, {rate / GOAL_SCHEDULES_PER_S:.2f}x the 5k/s goal)")
    batched_label = f"ScheduleDeletions over gRPC, {args.batch_size}/call:"
    print(f"  {batched_label:<42}{batched_rate:8.0f} schedules/s "
          f"({args.batch_concurrency} concurrent calls, {batched_rate / GOAL_SCHEDULES_PER_S:.2f}x the 5k/s goal)")
    print(f"  core DeletionSchedule.schedule (no gRPC):  {core_rate:8.0f} schedules/s")
    print(f"  object store ceiling, S3 DeleteObjects:    {store_rate:8.0f} deletes/s "
          f"({args.objects} due at once need >= {args.objects / store_rate * 1000:.0f} ms)")
    failed = False
    for name, watch, remaining in (("ScheduleDeletion", single_watch, single_remaining),
                                   ("ScheduleDeletions", batched_watch, batched_remaining)):
        lags = watch.lags()
        if lags:
            print(f"  {'deletion lag after ' + name + ':':<42}p50 {statistics.median(lags) * 1000:6.0f} ms   "
                  f"p99 {_percentile(lags, 0.99) * 1000:6.0f} ms   max {max(lags) * 1000:6.0f} ms "
                  f"(due -> acknowledged; goal p99 <= {GOAL_P99_LAG_S * 1000:.0f} ms)")
        print(f"  {name}: deleted {len(watch.left)}/{args.objects}; objects still in S3: {remaining}")
        failed |= len(watch.left) != args.objects or remaining > 0
    if failed:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--delay", type=float, default=3.0, help="seconds from scheduling to due")
    parser.add_argument("--spread", type=float, default=0.0,
                        help="extra uniform random delay in seconds (0: due times arrive as fast as schedules)")
    parser.add_argument("--batch-size", type=int, default=100, help="items per ScheduleDeletions call")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="concurrent ScheduleDeletions calls")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
