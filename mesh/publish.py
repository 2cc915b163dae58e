"""Publishing a job's output: upload, presign, schedule its deletion — and never leave an object unowned.

An object in the bucket must always have a deletion scheduled. So a failure after the upload (presign,
janitor) deletes the object, and a job cancelled (or past its deadline) while the upload thread runs
returns at once and deletes the object as soon as the thread, which cannot be interrupted, is done.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mesh.progress import ProgressReporter
from mesh.storage import ObjectStore, PresignedUrl, StorageError

log = logging.getLogger(__name__)

DELETE_GRACE_SECONDS = 600  # the subnet's own sweep rule: delete a while after the URL expires


class DeletionScheduler(Protocol):
    """Whoever deletes stored objects later (the janitor's gRPC client in the services)."""

    async def schedule(self, bucket: str, key: str, delay_seconds: float) -> dt.datetime: ...


@dataclass(frozen=True)
class StoredResult:
    bucket: str
    key: str
    url: PresignedUrl
    delete_at: dt.datetime


class Publisher:
    """Uploads outputs to one bucket with a URL lifetime and a deletion delay (default: lifetime + 600 s)."""

    def __init__(self, store: ObjectStore, scheduler: DeletionScheduler, *, presign_seconds: int | None = None,
                 delete_after_seconds: float | None = None) -> None:
        self.store = store
        self.scheduler = scheduler
        self.lifetime = presign_seconds or store.settings.presign_seconds
        self.delete_after = delete_after_seconds or self.lifetime + DELETE_GRACE_SECONDS
        self._discards: set[asyncio.Future] = set()

    async def publish(self, path: Path, key: str, reporter: ProgressReporter) -> StoredResult:
        size = path.stat().st_size
        reporter.stage("upload", total=size, unit="bytes", message="uploading the output")
        await self._upload(path, key)
        reporter.done = size
        try:
            url = await asyncio.to_thread(self.store.presign, key, self.lifetime)
            reporter.stage("schedule", message="scheduling the deletion with the janitor")
            delete_at = await self.scheduler.schedule(self.store.bucket, key, self.delete_after)
        except BaseException:
            await asyncio.shield(self._delete(key))
            raise
        return StoredResult(self.store.bucket, key, url, delete_at)

    async def _upload(self, path: Path, key: str) -> None:
        upload = asyncio.ensure_future(asyncio.to_thread(self.store.upload, path, key))
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            discard = asyncio.ensure_future(self._discard_after(upload, key))
            self._discards.add(discard)
            discard.add_done_callback(self._discards.discard)
            raise
        except BaseException:
            await asyncio.shield(self._delete(key))  # a half-written multipart upload, if any
            raise

    async def _discard_after(self, upload: asyncio.Future, key: str) -> None:
        await asyncio.gather(upload, return_exceptions=True)
        await self._delete(key)

    async def _delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.store.delete, key)
        except StorageError as exc:
            log.warning("could not delete an unpublished output", extra={"key": key, "error": str(exc)})

    async def close(self) -> None:
        """Wait for the deletions of cancelled uploads."""
        await asyncio.gather(*self._discards, return_exceptions=True)
