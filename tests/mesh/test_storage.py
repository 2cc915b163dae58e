"""mesh.storage.ObjectStore against real SeaweedFS: upload, presigned GETs, idempotent delete, clear errors."""

from __future__ import annotations

import time

import httpx
import pytest

from mesh.config import S3Settings
from mesh.embedded import free_port, http_ok
from mesh.errors import InvalidInput
from mesh.storage import ObjectStore, StorageError


def test_upload_presign_and_delete(s3_settings, tmp_path):
    store = ObjectStore(s3_settings)
    source = tmp_path / "out.mp4"
    source.write_bytes(b"result bytes")
    store.upload(source, "jobs/1/out.mp4")
    assert store.exists("jobs/1/out.mp4")
    signed = store.presign("jobs/1/out.mp4", lifetime_seconds=600)
    response = httpx.get(signed.url, timeout=10)
    assert response.content == b"result bytes"
    assert response.headers["content-type"] == "video/mp4"
    assert 590 < signed.expires_at.timestamp() - time.time() <= 600
    store.delete("jobs/1/out.mp4")
    assert not store.exists("jobs/1/out.mp4")
    assert not http_ok(signed.url)


def test_deleting_a_missing_object_succeeds(s3_settings):
    store = ObjectStore(s3_settings)
    store.delete("never/existed.mp4")
    assert not store.exists("never/existed.mp4")


def test_presigned_url_expires(s3_settings, tmp_path):
    store = ObjectStore(s3_settings)
    source = tmp_path / "a.mp4"
    source.write_bytes(b"x")
    store.upload(source, "short.mp4")
    # 5 s, not 1: on a loaded 2-core machine the first GET alone may take longer than a second.
    signed = store.presign("short.mp4", lifetime_seconds=5)
    assert http_ok(signed.url)
    time.sleep(max(0.0, signed.expires_at.timestamp() - time.time()) + 1.5)
    assert httpx.get(signed.url, timeout=10).status_code == 403


def test_presign_lifetime_is_bounded(s3_settings):
    with pytest.raises(InvalidInput, match="7 days"):
        ObjectStore(s3_settings).presign("a.mp4", lifetime_seconds=8 * 24 * 3600)


def test_unreachable_endpoint_is_a_storage_error(s3_settings):
    dead = S3Settings(**{**s3_settings.model_dump(), "endpoint": f"127.0.0.1:{free_port()}"})
    with pytest.raises(StorageError, match="unreachable") as caught:
        ObjectStore(dead).exists("a.mp4")
    assert caught.value.status == "UNAVAILABLE"


def test_wrong_credentials_are_a_storage_error(s3_settings):
    wrong = S3Settings(**{**s3_settings.model_dump(), "secret_key": "not-the-key"})
    with pytest.raises(StorageError, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        ObjectStore(wrong).delete("a.mp4")
