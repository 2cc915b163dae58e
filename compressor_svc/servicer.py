"""The thin gRPC adapter: request -> CompressJob, the core's progress -> Progress events (at least one a
second), the outcome -> upload, presign, janitor schedule -> CompressResult."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from compressor_svc.config import CompressorSettings
from compressor_svc.jobs import JobSlots
from compressor_svc.pipeline import CompressJob, CompressOutcome, DeadlineTooShort, ProgressEvent, compress
from mesh.errors import DependencyUnavailable, GateFailed, InvalidInput, stream_errors
from mesh.gates import all_passed, failures
from mesh.janitor_client import JanitorClient
from mesh.media import fetch, probe
from mesh.storage import ObjectStore
from mesh.telemetry import JobTelemetry
from mesh.v1 import common_pb2, compressor_pb2, compressor_pb2_grpc

log = logging.getLogger(__name__)

CODECS = {common_pb2.VIDEO_CODEC_UNSPECIFIED: "av1", common_pb2.VIDEO_CODEC_AV1: "av1",
          common_pb2.VIDEO_CODEC_HEVC: "hevc", common_pb2.VIDEO_CODEC_H264: "h264",
          common_pb2.VIDEO_CODEC_VP9: "vp9"}
MODES = {compressor_pb2.CODEC_MODE_UNSPECIFIED: "CRF", compressor_pb2.CODEC_MODE_CRF: "CRF",
         compressor_pb2.CODEC_MODE_VBR: "VBR", compressor_pb2.CODEC_MODE_CBR: "CBR"}
JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
PROGRESS_INTERVAL = 1.0

Report = Callable[[ProgressEvent], None]


def job_from_request(request: compressor_pb2.CompressRequest) -> CompressJob:
    """Validate the request fields (INVALID_ARGUMENT on any problem) into the core's job."""
    if not request.source_url:
        raise InvalidInput("source_url is required")
    if request.target_codec not in CODECS:
        raise InvalidInput(f"unknown target_codec {request.target_codec}")
    if request.codec_mode not in MODES:
        raise InvalidInput(f"unknown codec_mode {request.codec_mode}")
    if request.job_id and not JOB_ID.match(request.job_id):
        raise InvalidInput("job_id must be 1-64 characters of letters, digits, '_' or '-'")
    return CompressJob(request.vmaf_threshold, CODECS[request.target_codec], MODES[request.codec_mode],
                       request.target_bitrate_mbps).validated()


def _progress_proto(event: ProgressEvent, started: float) -> compressor_pb2.CompressEvent:
    elapsed = max(time.monotonic() - started, 1e-6)
    return compressor_pb2.CompressEvent(progress=common_pb2.Progress(
        stage=event.stage, done=event.done, total=event.total, unit=event.unit,
        rate=event.done / elapsed if event.unit in ("bytes", "frames") else 0.0, message=event.message))


def _timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class CompressorServicer(compressor_pb2_grpc.CompressorServicer):
    def __init__(self, settings: CompressorSettings, store: ObjectStore, janitor: JanitorClient,
                 slots: JobSlots) -> None:
        self.settings = settings
        self.store = store
        self.janitor = janitor
        self.slots = slots

    @stream_errors
    async def Compress(self, request: compressor_pb2.CompressRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[compressor_pb2.CompressEvent]:
        job = job_from_request(request)
        job_id = request.job_id or uuid.uuid4().hex
        remaining = context.time_remaining()
        budget = remaining if remaining is not None else self.settings.default_budget_seconds
        deadline = time.monotonic() + budget
        self.slots.admit()
        try:
            async for event in self._stream(request.source_url, job, job_id, deadline):
                yield event
        finally:
            self.slots.release()

    async def _stream(self, url: str, job: CompressJob, job_id: str,
                      deadline: float) -> AsyncIterator[compressor_pb2.CompressEvent]:
        """Run the job in a task; yield its latest progress at least once a second, then its result."""
        started = time.monotonic()
        latest = ProgressEvent("queued", message="waiting for a free slot")
        changed = asyncio.Event()
        telemetry = JobTelemetry()

        def report(event: ProgressEvent) -> None:
            nonlocal latest
            latest = event
            telemetry.progress(event.stage, event.done, event.total, event.unit, event.message)
            changed.set()

        report(latest)

        task = asyncio.create_task(self._run(url, job, job_id, deadline, report),
                                   name=f"compress-{job_id}")
        try:
            yield _progress_proto(latest, started)
            while not task.done():
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait({task, waiter}, timeout=PROGRESS_INTERVAL,
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                changed.clear()
                if not task.done():
                    yield _progress_proto(latest, started)
            yield compressor_pb2.CompressEvent(result=task.result())
        except BaseException as exc:
            telemetry.fail(exc)
            raise
        finally:
            telemetry.close()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self, url: str, job: CompressJob, job_id: str, deadline: float,
                   report: Report) -> compressor_pb2.CompressResult:
        async with self.slots.run():
            self.settings.work_dir.mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=self.settings.work_dir))
            try:
                return await self._compress(url, job, job_id, deadline, workdir, report)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)

    async def _compress(self, url: str, job: CompressJob, job_id: str, deadline: float, workdir: Path,
                        report: Report) -> compressor_pb2.CompressResult:
        s = self.settings
        timings: list[tuple[str, float]] = []
        report(ProgressEvent("fetch", unit="bytes", message="downloading the source"))
        fetch_started = time.monotonic()
        left = deadline - time.monotonic()
        if left <= s.deadline_reserve_seconds:
            raise DeadlineTooShort("the call's deadline leaves no time to compress")
        source = await fetch(url, workdir / "source.mp4", max_bytes=s.max_source_bytes,
                             timeout=min(s.download_timeout_seconds, left),
                             allow_private=s.allow_private_sources,
                             on_progress=lambda got, size: report(ProgressEvent("fetch", got, size, "bytes")))
        facts = await asyncio.to_thread(probe, source, max_dimension=s.max_dimension)
        if facts.duration > s.max_source_seconds:
            raise InvalidInput(f"source lasts {facts.duration:.1f} s, "
                               f"over the {s.max_source_seconds:g} s cap")
        timings.append(("fetch", time.monotonic() - fetch_started))
        upload_reserve = s.deadline_reserve_seconds + facts.size_bytes / (s.upload_mbytes_per_second * 1e6)
        budget = deadline - time.monotonic() - upload_reserve
        if budget <= 1.0:
            raise DeadlineTooShort(f"only {budget + upload_reserve:.1f} s left after the download")
        outcome = await compress(source, workdir / "work", job, s.compress_options(), budget_seconds=budget,
                                 on_progress=report)
        timings += outcome.timings
        log.info("compressed", extra={
            "job_id": job_id, "encoder": outcome.encoder, "preset": outcome.preset,
            "vmaf_neg": round(outcome.vmaf_neg, 3), "ratio": round(outcome.ratio, 3),
            "score": round(outcome.predicted_score, 4), "scenes": outcome.scene_count,
            "probes": outcome.probes, "meets_threshold": outcome.meets_threshold})
        if not all_passed(outcome.gates):
            raise GateFailed(f"the best output fails the validator's gates and would score zero: "
                             f"{failures(outcome.gates)}; nothing was uploaded")
        report(ProgressEvent("upload", 0, outcome.media.size_bytes, "bytes", "uploading the output"))
        upload_started = time.monotonic()
        stored = await self._store(outcome, job_id, report)
        timings.append(("upload", time.monotonic() - upload_started))
        return self._result(outcome, stored, timings)

    async def _store(self, outcome: CompressOutcome, job_id: str, report: Report) -> common_pb2.StoredObject:
        key = f"{self.settings.object_prefix.strip('/')}/{job_id}/{uuid.uuid4().hex}.mp4".lstrip("/")
        await asyncio.to_thread(self.store.upload, outcome.output, key)
        try:
            lifetime = self.settings.presign_seconds or self.store.settings.presign_seconds
            url = await asyncio.to_thread(self.store.presign, key, lifetime)
            report(ProgressEvent("schedule", message="scheduling the deletion with the janitor"))
            delete_at = await self.janitor.schedule(self.store.bucket, key,
                                                    lifetime + self.settings.delete_grace_seconds)
        except BaseException:
            # Nothing may stay in the bucket without a scheduled deletion.
            with contextlib.suppress(DependencyUnavailable):
                await asyncio.to_thread(self.store.delete, key)
            raise
        return common_pb2.StoredObject(bucket=self.store.bucket, object_key=key, presigned_url=url.url,
                                       url_expires_at=_timestamp(url.expires_at),
                                       delete_at=_timestamp(delete_at))

    @staticmethod
    def _result(outcome: CompressOutcome, stored: common_pb2.StoredObject,
                timings: list[tuple[str, float]]) -> compressor_pb2.CompressResult:
        return compressor_pb2.CompressResult(
            output=stored, media=outcome.media.to_proto(), source=outcome.source.to_proto(),
            timings=[common_pb2.StageTiming(stage=stage, duration=duration_pb2.Duration(
                seconds=int(seconds), nanos=int(seconds % 1 * 1e9))) for stage, seconds in timings],
            vmaf=outcome.vmaf, vmaf_neg=outcome.vmaf_neg, compression_ratio=outcome.ratio,
            predicted_score=outcome.predicted_score, meets_threshold=outcome.meets_threshold,
            encoder=outcome.encoder, scene_count=outcome.scene_count, note=outcome.note,
            gates=[gate.to_proto() for gate in outcome.gates])
