"""Object storage on the minio SDK: works against MinIO, AWS S3, Backblaze B2 and SeaweedFS."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import S3Error

from mesh.config import S3Settings
from mesh.errors import DependencyUnavailable, InvalidInput

_MISSING = {"NoSuchKey", "NoSuchObject"}


class StorageError(DependencyUnavailable):
    """The object store refused or could not be reached; the message says which call and why."""


@dataclass(frozen=True)
class PresignedUrl:
    url: str
    expires_at: dt.datetime


class ObjectStore:
    """Upload, presign and delete objects in one default bucket (others by name)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        # Short timeouts and no retries: a dead endpoint must surface as an error quickly, callers retry.
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=3, read=60), retries=False, maxsize=16)
        self.client = Minio(settings.endpoint, access_key=settings.access_key, secret_key=settings.secret_key,
                            secure=settings.secure, region=settings.region, http_client=http)
        # Presigning is offline signing; URLs must name the host validators reach (e.g. not `minio:9000`).
        public_secure = settings.secure if settings.public_secure is None else settings.public_secure
        self._signer = Minio(settings.public_endpoint, access_key=settings.access_key,
                             secret_key=settings.secret_key, secure=public_secure,
                             region=settings.region) if settings.public_endpoint else self.client

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            raise StorageError(f"S3 {what} failed: {exc.code}: {exc.message}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"S3 {what} failed: endpoint {self.settings.endpoint} unreachable ({exc})") from exc

    def ensure_bucket(self, bucket: str | None = None) -> None:
        name = bucket or self.bucket
        if not self._call("bucket check", self.client.bucket_exists, name):
            self._call("bucket creation", self.client.make_bucket, name)

    def bucket_exists(self, bucket: str) -> bool:
        return bool(self._call("bucket check", self.client.bucket_exists, bucket))

    def upload(self, path: Path, key: str, content_type: str = "video/mp4", bucket: str | None = None) -> None:
        self._call("upload", self.client.fput_object, bucket or self.bucket, key, str(path),
                   content_type=content_type)

    def presign(self, key: str, lifetime_seconds: int | None = None, bucket: str | None = None) -> PresignedUrl:
        seconds = lifetime_seconds or self.settings.presign_seconds
        if not 1 <= seconds <= 7 * 24 * 3600:
            raise InvalidInput(f"presigned URL lifetime must be 1 s to 7 days, got {seconds} s")
        url = self._call("presign", self._signer.presigned_get_object, bucket or self.bucket, key,
                         expires=dt.timedelta(seconds=seconds))
        return PresignedUrl(url, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))

    def exists(self, key: str, bucket: str | None = None) -> bool:
        try:
            self.client.stat_object(bucket or self.bucket, key)
            return True
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise StorageError(f"S3 stat failed: {exc.code}: {exc.message}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"S3 stat failed: endpoint {self.settings.endpoint} unreachable ({exc})") from exc

    def delete(self, key: str, bucket: str | None = None) -> None:
        """Delete an object; an object that is already gone counts as deleted."""
        try:
            self._call("delete", self.client.remove_object, bucket or self.bucket, key)
        except StorageError as exc:
            if isinstance(exc.__cause__, S3Error) and exc.__cause__.code in _MISSING:
                return
            raise
