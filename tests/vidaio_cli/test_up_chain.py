"""`vidaio-mesh up` as a production single box, as a real process: the gateway in chain mode with the operator's
wallet, then a restart on the same --data-dir that loses neither a scheduled deletion nor an organic job.

The chain is the only fake. `up` and every service it starts run with tests/vidaio_cli/fake_chain first on
PYTHONPATH: its `sitecustomize` (a test seam production never loads) replaces bittensor.Subtensor with a fake
that serves the metagraph from a JSON file and records the axons served. Everything else is real: Valkey with
its append-only file and SeaweedFS under the data directory (the public S3 API on its own port), the janitor,
the upscaler, the compressor, the gateway's bittensor Axon, and bittensor Dendrites signing as a permitted
validator and as a stranger.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import pytest
from bittensor_wallet import Wallet
from minio import Minio

from mesh.embedded import free_port
from mesh.ffmpeg import run_ffmpeg_sync
from mesh.healthcheck import NotServing, wait_serving
from mesh.rpc import duration
from mesh.v1 import janitor_pb2, janitor_pb2_grpc
from miner_gateway.protocol import (
    CompressionMinerPayload,
    TaskWarrantProtocol,
    VideoCompressionJobProtocol,
    VideoCompressionPollProtocol,
)
from vidaio_cli.identities import MinerTarget, make_dendrite

ROOT = Path(__file__).resolve().parents[2]
FAKE_CHAIN = Path(__file__).resolve().parent / "fake_chain"
VIDAIO_MESH = Path(sys.executable).parent / "vidaio-mesh"
NETUID = 85


class StallingSource(ThreadingHTTPServer):
    """Serves one video on loopback; the first download hangs until `release` is set, so the organic job is
    still unfinished when `up` stops."""

    def __init__(self, video: Path) -> None:
        self.video = video.read_bytes()
        self.requests = 0
        self.first_request = threading.Event()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _SourceHandler)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/reference.mp4"


class _SourceHandler(BaseHTTPRequestHandler):
    server: StallingSource

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.server.requests += 1
        if self.server.requests == 1:
            self.server.first_request.set()
            self.server.release.wait(timeout=120)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(self.server.video)))
            self.end_headers()
            self.wfile.write(self.server.video)
        except OSError:
            pass  # the stalled request's client (the stopped compressor) is gone

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _wallet(path: Path, name: str) -> Wallet:
    wallet = Wallet(name=name, hotkey="default", path=str(path))
    wallet.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)
    return wallet


class Box:
    """One `vidaio-mesh up` process and the ports it was given; output goes to a file (a pipe could fill)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], data_dir: Path, ports: dict[str, int]) -> None:
        self.tmp_path, self.env, self.data_dir, self.ports = tmp_path, env, data_dir, ports
        self.process: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        self.output = self.tmp_path / f"up-{self.runs}.out"
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [str(VIDAIO_MESH), "up", "--data-dir", str(self.data_dir), "--janitor-port",
                 str(self.ports["janitor"]), "--s3-port", str(self.ports["s3"]), "--s3-public-port",
                 str(self.ports["s3_public"]), "--ready-timeout", "240"],
                env=self.env, cwd=self.tmp_path, stdout=out, stderr=subprocess.STDOUT)
        for name in ("janitor", "upscaler", "compressor", "gateway"):
            try:
                wait_serving(f"127.0.0.1:{self.ports[name]}", timeout=300, poll_seconds=0.5,
                             alive=lambda: self.process.poll() is None)
            except NotServing:
                raise AssertionError(f"{name} never served under `up`:\n{self.log()}") from None
        deadline = time.monotonic() + 60
        while "Ctrl-C stops everything" not in self.output.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=90)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        logs = "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}"
                         for path in sorted((self.data_dir / "logs").glob("*.log")))
        return self.output.read_text(errors="replace")[-3000:] + "\n" + logs


def _call(wallet: Wallet, miner: MinerTarget, synapse, timeout: float = 20.0):
    async def send():
        dendrite = make_dendrite(wallet)
        try:
            return await dendrite.call(miner.axon_info(), synapse, timeout=timeout, deserialize=False)
        finally:
            await dendrite.aclose_session()

    return asyncio.run(send())


def _pending(janitor_port: int) -> dict[str, dt.datetime]:
    with grpc.insecure_channel(f"127.0.0.1:{janitor_port}") as channel:
        reply = janitor_pb2_grpc.JanitorStub(channel).ListPending(janitor_pb2.ListPendingRequest(page_size=1000),
                                                                  timeout=10)
    return {f"{item.bucket}/{item.object_key}": item.delete_at.ToDatetime(tzinfo=dt.UTC) for item in reply.deletions}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_up_serves_the_chain_and_a_restart_keeps_deletions_and_finishes_the_organic_job(tmp_path):
    wallets = tmp_path / "wallets"
    operator, validator, stranger = (_wallet(wallets, name) for name in ("operator", "validator", "stranger"))
    state = tmp_path / "chain.json"
    state.write_text(json.dumps({"owner": validator.hotkey.ss58_address, "subnets": {str(NETUID): [
        {"hotkey": operator.hotkey.ss58_address, "validator_permit": False, "stake": 10.0},
        {"hotkey": validator.hotkey.ss58_address, "validator_permit": True, "stake": 5000.0}]}}))
    ports = {name: free_port() for name in ("janitor", "upscaler", "compressor", "gateway", "axon", "s3",
                                            "s3_public")}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "S3_", "GATEWAY_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(FAKE_CHAIN), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "VIDAIO_TEST_FAKE_CHAIN": str(state), "OTEL_SDK_DISABLED": "true", "COLUMNS": "200",
        "TMPDIR": str(tmp_path),
        # The operator's settings, as a RunPod box would have them (the axon on loopback here).
        "GATEWAY_NETWORK": "test", "GATEWAY_NETUID": str(NETUID), "GATEWAY_WALLET_NAME": "operator",
        "GATEWAY_WALLET_PATH": str(wallets), "GATEWAY_HOST": "127.0.0.1", "GATEWAY_EXTERNAL_IP": "127.0.0.1",
        "GATEWAY_AXON_PORT": str(ports["axon"]), "GATEWAY_PORT": str(ports["gateway"]),
        "UPSCALER_PORT": str(ports["upscaler"]), "COMPRESSOR_PORT": str(ports["compressor"]),
        "S3_PUBLIC_ENDPOINT": f"127.0.0.1:{ports['s3_public']}",
        # The test's validator serves its video on loopback, which production refuses by default.
        "COMPRESSOR_ALLOW_LOOPBACK_SOURCES": "true",
    })
    data_dir = tmp_path / "box"
    box = Box(tmp_path, env, data_dir, ports)
    miner = MinerTarget("127.0.0.1", ports["axon"], operator.hotkey.ss58_address, operator.coldkeypub.ss58_address)

    video = tmp_path / "reference.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=256x144:rate=30", "-frames:v",
                     "24", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(video)], timeout=60)
    source = StallingSource(video)
    threading.Thread(target=source.serve_forever, daemon=True).start()
    job_id = str(uuid.uuid4())
    try:
        box.start()
        served = [json.loads(line) for line in Path(f"{state}.served").read_text().splitlines()]
        assert served == [{"network": "test", "netuid": NETUID, "ip": "127.0.0.1", "port": ports["axon"],
                           "hotkey": operator.hotkey.ss58_address}], "the axon is published with the operator's hotkey"
        mesh_state = json.loads((data_dir / "mesh.json").read_text())
        assert (mesh_state["network"], mesh_state["miner_hotkey"]) == ("test", operator.hotkey.ss58_address)
        assert not (data_dir / "wallets").exists(), "chain mode generates no wallets"

        assert _call(validator, miner, TaskWarrantProtocol()).dendrite.status_code == 200
        refused = _call(stranger, miner, TaskWarrantProtocol())
        assert refused.dendrite.status_code == 403 and "unknown hotkey" in refused.dendrite.status_message

        # A deletion due in an hour, scheduled through the janitor into Valkey.
        credentials = json.loads((data_dir / "s3" / "credentials.json").read_text())
        s3 = Minio(f"127.0.0.1:{ports['s3']}", access_key=credentials["access_key"],
                   secret_key=credentials["secret_key"], secure=False)
        s3.fput_object("vidaio-mesh", "kept/result.mp4", str(video))
        with grpc.insecure_channel(f"127.0.0.1:{ports['janitor']}") as channel:
            janitor_pb2_grpc.JanitorStub(channel).ScheduleDeletion(janitor_pb2.ScheduleDeletionRequest(
                object_key="kept/result.mp4", delay=duration(3600)), timeout=10)
        before = _pending(ports["janitor"])
        assert "vidaio-mesh/kept/result.mp4" in before

        # An organic job whose download hangs: still processing when `up` stops.
        payload = CompressionMinerPayload(reference_video_urls=[source.url()], target_codec="hevc", codec_mode="CRF",
                                          vmaf_threshold=85.0)
        kickoff = _call(validator, miner, VideoCompressionJobProtocol(job_id=job_id, miner_payload=payload))
        assert kickoff.job_response.accepted is True, kickoff.dendrite.status_message
        assert source.first_request.wait(timeout=60), "the compressor never fetched the source"
        poll = _call(validator, miner, VideoCompressionPollProtocol(job_id=job_id))
        assert poll.poll_response.status == "processing"
        assert box.stop() == 0, box.log()

        source.release.set()
        box.start()
        after = _pending(ports["janitor"])
        assert after["vidaio-mesh/kept/result.mp4"] == before["vidaio-mesh/kept/result.mp4"]
        assert s3.stat_object("vidaio-mesh", "kept/result.mp4").size == video.stat().st_size

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            poll = _call(validator, miner, VideoCompressionPollProtocol(job_id=job_id))
            if poll.poll_response.status != "processing":
                break
            time.sleep(2)
        assert poll.poll_response.status == "completed", box.log()
        [url] = poll.poll_response.optimized_video_urls
        assert url.startswith(f"http://127.0.0.1:{ports['s3_public']}/vidaio-mesh/"), "signed for the public S3"
        download = httpx.get(url, timeout=30)
        assert download.status_code == 200 and download.content[4:8] == b"ftyp"
        assert source.requests == 2, "the job was resumed once after the restart, not started again"
        result_key = "vidaio-mesh/" + url.split("/vidaio-mesh/", 1)[1].split("?", 1)[0]
        assert result_key in _pending(ports["janitor"]), "the result's deletion is scheduled too"
        resumed = [json.loads(line) for line in (data_dir / "logs" / "gateway.log").read_text().splitlines()
                   if line.startswith("{") and "resuming interrupted job" in line]
        assert [entry["job_id"] for entry in resumed] == [job_id]
        assert box.stop() == 0, box.log()
    finally:
        source.release.set()
        if box.process is not None and box.process.poll() is None:
            box.stop()  # SIGINT first: a killed `up` would leave its Valkey and SeaweedFS running
        source.shutdown()
        source.server_close()
