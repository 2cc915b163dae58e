"""`python -m miner_gateway` as operators run it: flags and env, and an organic job surviving a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import bittensor
import pytest
import redis

from mesh.embedded import free_port
from mesh.healthcheck import NotServing, wait_serving
from miner_gateway.__main__ import parse_overrides
from miner_gateway.protocol import (
    UpscalingMinerPayload,
    VideoUpscalingJobProtocol,
    VideoUpscalingPollProtocol,
)
from miner_gateway.server import StartupError
from tests.conftest import REPO_ROOT
from tests.miner_gateway.scripted import result_url

JOB = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def test_bittensor_flags_override_settings() -> None:
    overrides = parse_overrides(
        [
            "--wallet.name",
            "cold",
            "--wallet.hotkey",
            "hot",
            "--wallet.path",
            "/w",
            "--netuid",
            "85",
            "--subtensor.network",
            "test",
            "--axon.port",
            "9000",
            "--axon.external_ip",
            "203.0.113.7",
            "--axon.external_port",
            "9001",
        ]
    )
    assert overrides == {
        "wallet_name": "cold",
        "wallet_hotkey": "hot",
        "wallet_path": "/w",
        "netuid": "85",
        "network": "test",
        "axon_port": "9000",
        "external_ip": "203.0.113.7",
        "external_port": "9001",
    }


def test_local_mode_without_validators_refuses_to_start(redis_url) -> None:
    env = {
        **os.environ,
        "GATEWAY_NETWORK": "local",
        "GATEWAY_UPSCALER_ADDRS": "127.0.0.1:1",
        "REDIS_URL": redis_url,
    }
    env.pop("GATEWAY_VALIDATOR_HOTKEYS", None)
    result = subprocess.run(
        [sys.executable, "-m", "miner_gateway"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "GATEWAY_VALIDATOR_HOTKEYS" in result.stderr


class GatewayProcess:
    """One `python -m miner_gateway` process in local network mode."""

    def __init__(self, wallets, redis_url: str, upscaler: str, log: Path) -> None:
        self.axon_port, self.health_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "GATEWAY_NETWORK": "local",
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_VALIDATOR_HOTKEYS": wallets.validator.hotkey.ss58_address,
            "GATEWAY_UPSCALER_ADDRS": upscaler,
            "GATEWAY_PORT": str(self.health_port),
            "GATEWAY_JOB_LEASE_SECONDS": "1",
            "GATEWAY_DRAIN_SECONDS": "0",
            "REDIS_URL": redis_url,
        }
        self.args = [
            sys.executable,
            "-m",
            "miner_gateway",
            "--wallet.name",
            "miner",
            "--wallet.hotkey",
            "default",
            "--wallet.path",
            str(wallets.path),
            "--axon.port",
            str(self.axon_port),
        ]
        self.log = log
        self.hotkey = wallets.miner.hotkey.ss58_address
        self.process: subprocess.Popen | None = None

    async def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.args, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            await asyncio.to_thread(wait_serving, f"127.0.0.1:{self.health_port}", timeout=30,
                                    alive=lambda: self.process.poll() is None)
        except NotServing as exc:
            raise AssertionError(f"gateway did not become healthy ({exc}):\n" + self.log.read_text()[-3000:]) \
                from None

    def axon_info(self) -> bittensor.AxonInfo:
        return bittensor.AxonInfo(
            version=0, ip="127.0.0.1", port=self.axon_port, ip_type=4, hotkey=self.hotkey, coldkey=""
        )

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)


async def test_job_survives_a_gateway_crash_and_is_resumed_by_the_next_process(
    wallets, redis_url, backend, dendrite, tmp_path
) -> None:
    first = GatewayProcess(wallets, redis_url, backend.address, tmp_path / "first.log")
    await first.start()
    second = GatewayProcess(wallets, redis_url, backend.address, tmp_path / "second.log")
    try:
        payload = UpscalingMinerPayload(
            reference_video_urls=["https://v.test/ok/0.mp4", "https://v.test/hold/1.mp4"]
        )
        kickoff = await dendrite.call(
            first.axon_info(),
            VideoUpscalingJobProtocol(job_id=JOB, miner_payload=payload),
            timeout=10,
            deserialize=False,
        )
        assert kickoff.job_response.accepted is True
        store = redis.Redis.from_url(redis_url)
        for _ in range(200):
            if len(backend.script.requests) == 2 and store.hexists(f"gateway:job:{JOB}", "item:0"):
                break
            await asyncio.sleep(0.02)
        store.close()
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    for _ in range(100):
        if backend.script.cancelled:
            break
        await asyncio.sleep(0.02)
    assert backend.script.cancelled == 1, "the crash dropped the in-flight call"

    backend.script.release.set()
    await second.start()
    try:
        status = ""
        for _ in range(150):
            poll = await dendrite.call(
                second.axon_info(), VideoUpscalingPollProtocol(job_id=JOB), timeout=10, deserialize=False
            )
            status = poll.poll_response.status
            if status != "processing":
                break
            await asyncio.sleep(0.1)
        assert status == "completed", (tmp_path / "second.log").read_text()[-3000:]
        assert poll.poll_response.optimized_video_urls == [result_url(f"{JOB}-0"), result_url(f"{JOB}-1")]
        assert backend.script.sources() == [
            "https://v.test/ok/0.mp4",
            "https://v.test/hold/1.mp4",
            "https://v.test/hold/1.mp4",
        ], "only the unfinished item ran again"
    finally:
        assert second.stop(signal.SIGTERM) == 0, (tmp_path / "second.log").read_text()[-3000:]


async def test_busy_axon_port_is_a_clear_startup_error(gateway_factory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        with pytest.raises(StartupError, match="cannot listen on 127.0.0.1"):
            await gateway_factory(axon_port=taken.getsockname()[1])


async def test_axon_connections_have_nagle_off(gateway) -> None:
    """asyncio sets TCP_NODELAY only on sockets created as IPPROTO_TCP; without it a reply can wait 40 ms."""
    [listener] = gateway._http.servers[0].sockets
    assert listener.proto == socket.IPPROTO_TCP
