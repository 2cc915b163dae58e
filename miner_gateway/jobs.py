"""Organic jobs (Job/Poll synapses): accepted once per job_id, run in the background, kept in Redis.

Restart policy: a job is never lost with the process. Its state, payload and every finished item live in
Redis; the runner holds a lease (a key with a short TTL) that it renews while it works. When a gateway starts,
and every half lease thereafter, it looks at the active jobs: one whose lease has lapsed is **resumed** (only
its unfinished items run again, with the time left before the job's deadline) or, when its deadline has passed
or it has been started `max_attempts` times already, **finished** with the items it has ("failed" if none).

When Redis cannot be reached, `submit` and `poll` raise `JobStoreUnavailable` instead of a Redis error, so
the synapse handler answers the validator (a refused kick-off) rather than letting the axon answer HTTP 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

import redis.asyncio as redis
from opentelemetry import propagate, trace
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mesh.scheduling import ORGANIC
from miner_gateway.dispatch import Dispatcher
from miner_gateway.items import compress_items, upscale_items
from miner_gateway.protocol import CompressionMinerPayload, UpscalingMinerPayload

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

JobKind = Literal["upscaling", "compression"]
PROCESSING, COMPLETED, FAILED = "processing", "completed", "failed"

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ACTIVE = "gateway:jobs:active"
# Redis down, refusing connections, timing out, still loading its data set, or rejecting our credentials.
_STORE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_CREDENTIALS = re.compile(r"//[^/@\s]*@")


class JobStoreUnavailable(RuntimeError):
    """The job store (Redis) cannot be reached. The message says why (the Redis error's class and text, with
    any credentials in it masked); it never carries the Redis URL's password."""

    @classmethod
    def from_error(cls, error: BaseException) -> JobStoreUnavailable:
        text = _CREDENTIALS.sub("//***@", f"{type(error).__name__}: {error}")
        return cls(text[:300])


# Create the job hash only if it does not exist, with its TTL, and list it as active.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _job_key(job_id: str) -> str:
    return f"gateway:job:{job_id}"


def _lease_key(job_id: str) -> str:
    return f"gateway:job:{job_id}:lease"


@dataclass
class JobRecord:
    job_id: str
    kind: JobKind
    payload: str
    status: str
    deadline_at: float
    attempts: int
    trace_carrier: dict[str, str]
    items: dict[int, str] = field(default_factory=dict)
    urls: list[str] = field(default_factory=list)


class JobStore:
    """Job state in Redis: one hash per job, a lease key per running job, and the set of active job ids."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: int, lease_seconds: float) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._create = client.register_script(_CREATE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def create(
        self, job_id: str, kind: JobKind, payload: str, deadline_at: float, trace_carrier: dict[str, str]
    ) -> bool:
        """False when the job already exists (the caller answers it as accepted: idempotent)."""
        keep = int(max(0.0, deadline_at - time.time())) + self._ttl
        fields = {
            "kind": kind,
            "payload": payload,
            "status": PROCESSING,
            "deadline_at": repr(deadline_at),
            "attempts": "0",
            "trace": json.dumps(trace_carrier),
            "created_at": repr(time.time()),
        }
        flat = [part for pair in fields.items() for part in pair]
        return bool(await self._create(keys=[_job_key(job_id), _ACTIVE], args=[keep, job_id, *flat]))

    async def get(self, job_id: str) -> JobRecord | None:
        data = await self._redis.hgetall(_job_key(job_id))
        if not data or "kind" not in data:
            return None
        items = {int(name.split(":", 1)[1]): url for name, url in data.items() if name.startswith("item:")}
        return JobRecord(
            job_id=job_id,
            kind=data["kind"],
            payload=data.get("payload", "{}"),
            status=data.get("status", FAILED),
            deadline_at=float(data.get("deadline_at", 0)),
            attempts=int(data.get("attempts", 0)),
            trace_carrier=json.loads(data.get("trace", "{}")),
            items=items,
            urls=json.loads(data.get("urls", "[]")),
        )

    async def acquire(self, job_id: str, owner: str) -> bool:
        return bool(await self._redis.set(_lease_key(job_id), owner, nx=True, px=self._lease_ms))

    async def renew(self, job_id: str, owner: str) -> bool:
        return bool(await self._renew(keys=[_lease_key(job_id)], args=[owner, self._lease_ms]))

    async def release(self, job_id: str, owner: str) -> None:
        await self._release(keys=[_lease_key(job_id)], args=[owner])

    async def begin_attempt(self, job_id: str) -> int:
        return int(await self._redis.hincrby(_job_key(job_id), "attempts", 1))

    async def record_item(self, job_id: str, index: int, url: str) -> None:
        await self._redis.hset(_job_key(job_id), f"item:{index}", url)

    async def finish(self, job_id: str, urls: list[str]) -> str:
        """Store the final URLs; "completed" when at least one item produced a URL, else "failed"."""
        status = COMPLETED if any(urls) else FAILED
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(_job_key(job_id), mapping={"status": status, "urls": json.dumps(urls)})
            pipe.expire(_job_key(job_id), self._ttl)
            pipe.srem(_ACTIVE, job_id)
            pipe.delete(_lease_key(job_id))
            await pipe.execute()
        return status

    async def active_ids(self) -> list[str]:
        return sorted(await self._redis.smembers(_ACTIVE))

    async def forget(self, job_id: str) -> None:
        await self._redis.srem(_ACTIVE, job_id)


def _items(kind: JobKind, payload: str):
    if kind == "upscaling":
        return upscale_items(UpscalingMinerPayload.model_validate_json(payload))
    return compress_items(CompressionMinerPayload.model_validate_json(payload))


class JobRunner:
    """Accepts, runs, resumes and reports organic jobs; one instance per gateway process."""

    def __init__(
        self,
        store: JobStore,
        dispatcher: Dispatcher,
        *,
        timeout_seconds: float,
        lease_seconds: float,
        max_attempts: int,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._timeout = timeout_seconds
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._owner = uuid.uuid4().hex
        self._running: dict[str, asyncio.Task] = {}
        self._recoverer: asyncio.Task | None = None

    async def start(self) -> None:
        """Resume what a previous process left behind, now and every half lease."""
        self._recoverer = asyncio.create_task(self._recover_forever(), name="job recovery")

    async def close(self) -> None:
        """Stop running jobs and release their leases so the next gateway resumes them at once."""
        if self._recoverer is not None:
            self._recoverer.cancel()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def serves(self, kind: JobKind) -> bool:
        pool = self._dispatcher.upscalers if kind == "upscaling" else self._dispatcher.compressors
        return pool is not None

    async def submit(
        self, job_id: str, kind: JobKind, payload: UpscalingMinerPayload | CompressionMinerPayload
    ) -> bool:
        """Accept a job; a job_id seen before is accepted again without starting a second run."""
        if not _JOB_ID.fullmatch(job_id) or not self.serves(kind):
            return False
        payload_json = payload.model_dump_json()
        if not _items(kind, payload_json):
            return False
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        try:
            if not await self._store.create(job_id, kind, payload_json, time.time() + self._timeout, carrier):
                existing = await self._store.get(job_id)
                return existing is not None and existing.kind == kind
            if await self._store.acquire(job_id, self._owner):
                record = await self._store.get(job_id)
                if record is not None:
                    self._launch(record)
        except _STORE_ERRORS as error:
            # Refused. Should the job have been stored before Redis went, recovery runs it once Redis is back,
            # and a kick-off repeated then is accepted (same job_id) without a second run.
            raise JobStoreUnavailable.from_error(error) from error
        return True

    async def poll(self, job_id: str, kind: JobKind) -> tuple[str, list[str]]:
        """("processing", []), ("completed", urls) or ("failed", urls); unknown jobs are "failed"."""
        try:
            record = await self._store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        except _STORE_ERRORS as error:
            raise JobStoreUnavailable.from_error(error) from error
        if record is None or record.kind != kind:
            return FAILED, []
        if record.status == PROCESSING:
            return PROCESSING, []
        return record.status, record.urls

    def _launch(self, record: JobRecord) -> None:
        self._running[record.job_id] = asyncio.create_task(self._run(record), name=f"job {record.job_id}")

    async def _run(self, record: JobRecord) -> None:
        job_id = record.job_id
        keeper = asyncio.create_task(self._keep_lease(job_id, asyncio.current_task()))
        try:
            attempt = await self._store.begin_attempt(job_id)
            with tracer.start_as_current_span(
                f"job {record.kind}",
                context=propagate.extract(record.trace_carrier),
                attributes={
                    "mesh.job.id": job_id,
                    "mesh.job.attempt": attempt,
                    "mesh.task_type": record.kind,
                },
            ):
                items = _items(record.kind, record.payload)
                pending = [item for item in items if item.index not in record.items]
                log.info(
                    "job running",
                    extra={
                        "job_id": job_id,
                        "attempt": attempt,
                        "items": len(items),
                        "pending": len(pending),
                    },
                )
                deadline = time.monotonic() + (record.deadline_at - time.time())
                run = self._dispatcher.upscale if record.kind == "upscaling" else self._dispatcher.compress

                async def save(index: int, url: str) -> None:
                    await self._store.record_item(job_id, index, url)

                await run(pending, deadline, job_id, on_done=save, priority=ORGANIC)
                done = await self._store.get(job_id)
                results = done.items if done is not None else {}
                status = await self._store.finish(job_id, [results.get(item.index, "") for item in items])
                log.info("job finished", extra={"job_id": job_id, "status": status})
        except asyncio.CancelledError:
            await asyncio.shield(self._store.release(job_id, self._owner))
            raise
        except Exception:  # noqa: BLE001 - a broken job is finished as failed, not left processing
            log.exception("job crashed", extra={"job_id": job_id})
            await self._store.finish(job_id, [])
        finally:
            keeper.cancel()
            self._running.pop(job_id, None)

    async def _keep_lease(self, job_id: str, job: asyncio.Task) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            if not await self._store.renew(job_id, self._owner):
                log.warning("lost the lease of a running job; stopping it", extra={"job_id": job_id})
                job.cancel()
                return

    async def recover(self) -> None:
        """Resume or finish active jobs that no live runner holds."""
        for job_id in await self._store.active_ids():
            if job_id in self._running:
                continue
            record = await self._store.get(job_id)
            if record is None or record.status != PROCESSING:
                await self._store.forget(job_id)
                continue
            if not await self._store.acquire(job_id, self._owner):
                continue
            if time.time() >= record.deadline_at or record.attempts >= self._max_attempts:
                urls = [record.items.get(item.index, "") for item in _items(record.kind, record.payload)]
                status = await self._store.finish(job_id, urls)
                log.warning(
                    "interrupted job not resumed",
                    extra={
                        "job_id": job_id,
                        "status": status,
                        "attempts": record.attempts,
                        "deadline_passed": time.time() >= record.deadline_at,
                    },
                )
                continue
            log.info(
                "resuming interrupted job",
                extra={"job_id": job_id, "attempts": record.attempts, "items_done": len(record.items)},
            )
            self._launch(record)

    async def _recover_forever(self) -> None:
        while True:
            try:
                await self.recover()
            except Exception:  # noqa: BLE001 - Redis hiccups must not end recovery for good
                log.exception("job recovery pass failed")
            await asyncio.sleep(self._lease / 2)
