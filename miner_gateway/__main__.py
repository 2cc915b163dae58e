"""`python -m miner_gateway` / `miner-gateway`: the subnet-facing axon of the mesh.

Settings come from GATEWAY_* variables (and REDIS_URL, OTEL_*); the usual bittensor flags override them.
"""

from __future__ import annotations

import argparse
import logging
import os
from logging.handlers import QueueHandler

from mesh.config import load_settings
from mesh.server import run_service
from miner_gateway.config import GatewaySettings

SERVICE = "miner-gateway"

# flag -> settings field; bittensor's names, so existing miner start commands keep working.
FLAGS = {
    "--wallet.name": "wallet_name",
    "--wallet.hotkey": "wallet_hotkey",
    "--wallet.path": "wallet_path",
    "--netuid": "netuid",
    "--subtensor.network": "network",
    "--subtensor.chain_endpoint": "chain_endpoint",
    "--axon.ip": "host",
    "--axon.port": "axon_port",
    "--axon.external_ip": "external_ip",
    "--axon.external_port": "external_port",
}


def parse_overrides(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="miner-gateway", description=__doc__)
    for flag, field in FLAGS.items():
        parser.add_argument(flag, dest=field, default=None, help=f"overrides GATEWAY_{field.upper()}")
    args = parser.parse_args(argv)
    return {field: value for field, value in vars(args).items() if value is not None}


def _bittensor_logs_as_json() -> None:
    """bittensor prints its own coloured lines beside the records it propagates; keep only the JSON ones."""
    import bittensor  # noqa: F401 - importing it installs its handler

    logger = logging.getLogger("bittensor")
    for handler in [h for h in logger.handlers if isinstance(h, QueueHandler)]:
        logger.removeHandler(handler)


def build_gateway(settings: GatewaySettings):
    """The gateway with the operator's wallet (read now: a missing hotkey stops the process with a hint)."""
    _bittensor_logs_as_json()
    from bittensor_wallet import Wallet
    from bittensor_wallet.errors import KeyFileError

    from miner_gateway.server import Gateway

    wallet = Wallet(
        name=settings.wallet_name,
        hotkey=settings.wallet_hotkey,
        path=os.path.expanduser(settings.wallet_path),
    )
    try:
        wallet.get_hotkey()
    except KeyFileError as error:
        raise SystemExit(
            f"{SERVICE}: cannot read the hotkey ({error}); check --wallet.* / GATEWAY_WALLET_*"
        ) from None
    return Gateway(settings, wallet)


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(GatewaySettings, **parse_overrides(argv))
    run_service(SERVICE, settings.log_level, lambda: build_gateway(settings))


if __name__ == "__main__":
    main()
