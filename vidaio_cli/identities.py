"""Who takes part in a local round: the validator's wallet and Dendrite, and the miner's axon it calls.

Kept apart from the round itself because the stack (`mesh_stack`) needs the same identities without playing
a round: it makes the miner's wallet and tells the gateway which validator hotkey to accept. Everything here
is local mode: keys are unencrypted and nothing asks the network who we are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bittensor.core.chain_data import AxonInfo
from bittensor.core.dendrite import Dendrite
from bittensor.utils import networking
from bittensor_wallet import Wallet

LOOPBACK = "127.0.0.1"


def local_wallet(wallet_dir: Path, name: str) -> Wallet:
    """A wallet with unencrypted keys in `wallet_dir`, made on first use and reused after (local mode only)."""
    wallet = Wallet(name=name, hotkey="default", path=str(wallet_dir))
    if not (wallet.coldkeypub_file.exists_on_device() and wallet.hotkey_file.exists_on_device()):
        wallet.create(coldkey_use_password=False, hotkey_use_password=False, overwrite=True, suppress=True)
    return wallet


def validator_wallet(wallet_dir: Path) -> Wallet:
    """The local validator's identity; the gateway in local mode accepts exactly its hotkey."""
    return local_wallet(wallet_dir, "vidaio-local-validator")


@contextlib.contextmanager
def _no_public_ip_lookup() -> Iterator[None]:
    """The Dendrite asks a web service for its public IP at construction; there is no network here."""
    original = networking.get_external_ip
    networking.get_external_ip = lambda: LOOPBACK
    try:
        yield
    finally:
        networking.get_external_ip = original


def make_dendrite(wallet: Wallet) -> Dendrite:
    with _no_public_ip_lookup():
        return Dendrite(wallet=wallet)


@dataclass(frozen=True)
class MinerTarget:
    """Where the miner's axon listens and which hotkey it signs as (the Dendrite signs for that hotkey)."""

    ip: str
    port: int
    hotkey: str
    coldkey: str = ""

    def axon_info(self) -> AxonInfo:
        return AxonInfo(version=0, ip=self.ip, port=self.port, ip_type=4, hotkey=self.hotkey,
                        coldkey=self.coldkey or self.hotkey)

    def __str__(self) -> str:
        return f"{self.hotkey[:10]}… at {self.ip}:{self.port}"
