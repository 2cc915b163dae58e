"""Janitor test helpers: in-loop janitor servers on the embedded Valkey and S3, and tiny objects."""

from __future__ import annotations

import io

import pytest
from redis.asyncio import Redis

from janitor_svc.server import JanitorServer
from mesh.config import RedisSettings, S3Settings
from mesh.storage import ObjectStore
from tests.conftest import janitor_test_settings


def put_object(store: ObjectStore, key: str, bucket: str | None = None) -> str:
    store.client.put_object(bucket or store.bucket, key, io.BytesIO(b"x"), 1)
    return key


@pytest.fixture()
def store(s3_settings) -> ObjectStore:
    return ObjectStore(s3_settings)


@pytest.fixture()
async def redis_client(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture()
async def start_janitor(redis_url, s3_settings):
    """`await start_janitor(**settings)` -> a started JanitorServer on this test's event loop."""
    started: list[JanitorServer] = []

    async def start(*, redis: str | None = None, s3: S3Settings | None = None, **overrides) -> JanitorServer:
        server = JanitorServer(janitor_test_settings(**overrides), RedisSettings(url=redis or redis_url),
                               s3 or s3_settings)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(grace=0.5)
