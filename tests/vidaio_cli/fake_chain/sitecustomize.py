"""TEST SEAM, never loaded in production: a fake chain for processes a test starts (no subtensor runs here).

A test puts this directory first on PYTHONPATH and names a state file in VIDAIO_TEST_FAKE_CHAIN. Python imports
`sitecustomize` from sys.path at start-up in every process, so `vidaio-mesh up` and each service it starts
load this module; without the variable it does nothing. With it, an import hook waits for `bittensor` to load
and then replaces `bittensor.Subtensor` (what the gateway's ChainMetagraph connects with) by `FakeSubtensor`:
the metagraph and the subnet owner come from the state file, and every `serve_axon` is appended to
`<state file>.served` as a JSON line for the test to read. Everything else in those processes is real.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from pathlib import Path

STATE = os.environ.get("VIDAIO_TEST_FAKE_CHAIN")


class FakeMetagraph:
    """The three fields the gateway reads from bittensor.Metagraph."""

    def __init__(self, neurons: list[dict]) -> None:
        self.hotkeys = [neuron["hotkey"] for neuron in neurons]
        self.validator_permit = [neuron["validator_permit"] for neuron in neurons]
        self.S = [neuron["stake"] for neuron in neurons]


class FakeSubtensor:
    def __init__(self, network: str | None = None, **_: object) -> None:
        self.network = network

    @staticmethod
    def _state() -> dict:
        return json.loads(Path(STATE).read_text())

    def metagraph(self, netuid: int, lite: bool = True) -> FakeMetagraph:
        return FakeMetagraph(self._state()["subnets"][str(netuid)])

    def get_subnet_owner_hotkey(self, netuid: int) -> str:
        return self._state()["owner"]

    def serve_axon(self, netuid: int, axon) -> None:
        served = {"network": self.network, "netuid": netuid, "ip": axon.external_ip, "port": axon.external_port,
                  "hotkey": axon.wallet.hotkey.ss58_address}
        with open(f"{STATE}.served", "a") as file:
            file.write(json.dumps(served) + "\n")


class _PatchBittensor(importlib.abc.MetaPathFinder):
    """Finds `bittensor` as usual and swaps its Subtensor for the fake once the package has executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "bittensor":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module) -> None:
            execute(module)
            module.Subtensor = FakeSubtensor

        spec.loader.exec_module = exec_module
        return spec


if STATE:
    sys.meta_path.insert(0, _PatchBittensor())
