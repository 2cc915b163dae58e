"""`vidaio-mesh up` with the operator's own Redis and S3 instead of the embedded ones, and the settings it
refuses before starting anything (with the reason, never a secret)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
import typer
from bittensor_wallet import Wallet
from minio import Minio
from typer.testing import CliRunner

from mesh.embedded import free_port
from mesh.healthcheck import NotServing, wait_serving
from mesh.janitor_client import JanitorClient
from vidaio_cli import infra
from vidaio_cli.stores import StackSettings, Stores

ROOT = Path(__file__).resolve().parents[2]
VIDAIO_MESH = Path(sys.executable).parent / "vidaio-mesh"
OPERATOR_VARIABLES = ("REDIS_URL", "S3_ENDPOINT", "S3_PUBLIC_ENDPOINT", "GATEWAY_NETWORK", "GATEWAY_WALLET_NAME",
                      "GATEWAY_WALLET_PATH")


def _invoke_up(tmp_path: Path, monkeypatch, **env: str):
    """`up` in this process; every case here stops before it would install signal handlers or start a store."""
    monkeypatch.chdir(tmp_path)  # no `.env` from the repository
    app = typer.Typer()
    infra.register(app)
    values = {name: None for name in OPERATOR_VARIABLES} | env
    result = CliRunner().invoke(app, ["up", "--data-dir", str(tmp_path / "box")], env=values)
    return result.exit_code, " ".join(result.output.split())  # the console wraps long lines


@pytest.fixture()
def operator_wallet(tmp_path) -> Path:
    path = tmp_path / "wallets"
    Wallet(name="operator", hotkey="default", path=str(path)).create_if_non_existent(
        coldkey_use_password=False, hotkey_use_password=False, suppress=True)
    return path


def test_chain_mode_needs_a_public_address_for_the_embedded_s3(tmp_path, monkeypatch, operator_wallet):
    handler = signal.getsignal(signal.SIGINT)
    code, output = _invoke_up(tmp_path, monkeypatch, GATEWAY_NETWORK="finney", GATEWAY_WALLET_NAME="operator",
                        GATEWAY_WALLET_PATH=str(operator_wallet))
    assert code == 2
    assert "S3_PUBLIC_ENDPOINT" in output and "--s3-public-port" in output
    assert not (tmp_path / "box" / "valkey").exists(), "nothing is started for settings that cannot serve"
    assert signal.getsignal(signal.SIGINT) is handler

    code, output = _invoke_up(tmp_path, monkeypatch, GATEWAY_NETWORK="finney", GATEWAY_WALLET_NAME="operator",
                        GATEWAY_WALLET_PATH=str(operator_wallet), S3_PUBLIC_ENDPOINT="203.0.113.7:40123")
    assert code == 2 and "needs --s3-public-port" in output


def test_chain_mode_without_a_readable_hotkey_names_the_wallet_settings(tmp_path, monkeypatch):
    code, output = _invoke_up(tmp_path, monkeypatch, GATEWAY_NETWORK="test", GATEWAY_WALLET_NAME="nobody",
                        GATEWAY_WALLET_PATH=str(tmp_path / "no-wallets"), S3_ENDPOINT="s3.example.test:443")
    assert code == 2
    assert "GATEWAY_WALLET_NAME" in output and "hotkey" in output


def test_a_bad_redis_url_is_named_without_its_password(tmp_path, monkeypatch):
    code, output = _invoke_up(tmp_path, monkeypatch, REDIS_URL="http://:hunter2-secret@redis.example.test:6379/0")
    assert code == 2
    assert "REDIS_URL" in output and "hunter2" not in output


def test_external_stores_replace_the_embedded_ones(tmp_path, redis_url, s3_server):
    password_url = redis_url.replace("redis://", "redis://:pw@")
    stores = Stores(StackSettings(_env_file=None, REDIS_URL=password_url, S3_ENDPOINT=s3_server.endpoint), tmp_path)
    assert stores.valkey is None and stores.s3 is None and stores.env() == {}
    rows = {name: (address, status) for name, address, status in stores.rows()}
    assert rows["redis (external)"][0] == redis_url.replace("redis://", "redis://:***@")
    assert rows["s3 (external)"][0] == s3_server.endpoint
    assert list(tmp_path.iterdir()) == [], "no embedded store was prepared"


@pytest.mark.slow
def test_up_runs_the_services_on_an_external_redis_and_s3(tmp_path, redis_url, s3_server):
    """The janitor's schedule lands in the operator's Redis; `up` starts no Valkey and no SeaweedFS of its own."""
    ports = {name: free_port() for name in ("janitor", "upscaler", "compressor", "gateway", "axon")}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "S3_", "GATEWAY_"))}
    env.update({"REDIS_URL": redis_url, **s3_server.env(), "OTEL_SDK_DISABLED": "true", "COLUMNS": "200",
                "UPSCALER_PORT": str(ports["upscaler"]), "COMPRESSOR_PORT": str(ports["compressor"]),
                "GATEWAY_PORT": str(ports["gateway"]), "GATEWAY_AXON_PORT": str(ports["axon"]),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    output = tmp_path / "up.out"
    with open(output, "wb") as out:
        up = subprocess.Popen([str(VIDAIO_MESH), "up", "--data-dir", str(tmp_path / "box"), "--janitor-port",
                               str(ports["janitor"]), "--ready-timeout", "240"], env=env, cwd=tmp_path, stdout=out,
                              stderr=subprocess.STDOUT)
    try:
        for name in ("janitor", "upscaler", "compressor", "gateway"):
            try:
                wait_serving(f"127.0.0.1:{ports[name]}", timeout=240, poll_seconds=0.5, alive=lambda: up.poll() is None)
            except NotServing:
                raise AssertionError(output.read_text()) from None
        deadline = time.monotonic() + 60
        while "Ctrl-C stops everything" not in output.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)

        async def schedule() -> None:
            client = JanitorClient(f"127.0.0.1:{ports['janitor']}")
            try:
                await client.schedule(s3_server.bucket, "external/object.mp4", 3600)
            finally:
                await client.close()

        asyncio.run(schedule())
        store = redis.Redis.from_url(redis_url)
        assert store.zscore("janitor:due", f"{s3_server.bucket}/external/object.mp4") is not None
        store.close()
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=90) == 0
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)  # not SIGKILL: that would leave the services' stores running
            try:
                up.wait(timeout=90)
            finally:
                if up.poll() is None:
                    up.kill()
                    up.wait()
    printed = output.read_text()
    assert "redis (external)" in printed and "s3 (external)" in printed and "valkey (embedded)" not in printed
    assert not (tmp_path / "box" / "valkey").exists() and not (tmp_path / "box" / "s3").exists()


def test_a_crashed_embedded_store_is_restarted_with_its_data(tmp_path):
    """Valkey killed outright comes back on the same port with what its AOF holds; SeaweedFS with its objects
    and the same credentials, so a URL signed before the crash still downloads."""
    settings = StackSettings(_env_file=None, S3_PUBLIC_ENDPOINT="127.0.0.1:1")  # only the public port matters
    stores = Stores(settings, tmp_path, s3_public_port=free_port(), s3_public_bind="127.0.0.1")
    stores.start()
    try:
        assert stores.tend() == []
        client = redis.Redis.from_url(stores.redis_url)
        client.zadd("janitor:due", {"vidaio-mesh/a.mp4": 1234.0})
        client.close()
        s3 = stores.s3.client()
        (tmp_path / "a.mp4").write_bytes(b"result")
        s3.fput_object(stores.s3.bucket, "a.mp4", str(tmp_path / "a.mp4"))
        url = Minio(f"127.0.0.1:{stores.s3.public_port}", access_key=stores.s3.access_key,
                    secret_key=stores.s3.secret_key, secure=False).presigned_get_object(stores.s3.bucket, "a.mp4")
        time.sleep(1.2)  # appendfsync everysec: what a kill -9 may lose is the last second
        os.kill(stores.valkey._server._process.pid, signal.SIGKILL)
        os.killpg(stores.s3._public_proc.pid, signal.SIGKILL)
        stores.valkey._server._process.wait()
        stores.s3._public_proc.wait()
        events = stores.tend()
        assert events == ["valkey exited; restarted on the same port and data",
                          "seaweedfs exited; restarted on the same port and data"]
        client = redis.Redis.from_url(stores.redis_url)
        assert client.zscore("janitor:due", "vidaio-mesh/a.mp4") == 1234.0
        client.close()
        assert httpx.get(url, timeout=10).content == b"result"
    finally:
        stores.stop()


def test_stores_left_running_by_a_killed_up_are_stopped_before_the_next_start(tmp_path):
    """`up` killed outright cannot stop its Valkey and SeaweedFS; the next `up` on the same data directory stops
    them (by the pids recorded there) instead of running a second Valkey on the same append-only file."""
    settings = StackSettings(_env_file=None)
    first = Stores(settings, tmp_path)
    first.start()
    orphans = [first.valkey._server._process, first.s3._proc]
    client = redis.Redis.from_url(first.redis_url)
    client.set("kept", "yes")
    client.close()
    second = Stores(settings, tmp_path)
    try:
        second.start()
        for orphan in orphans:
            assert orphan.wait(timeout=5) is not None, "the earlier store still runs"
        client = redis.Redis.from_url(second.redis_url)
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        second.stop()
        first.stop()
