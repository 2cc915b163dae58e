"""Who may call the axon: validators with a permit (and optionally enough stake), from a metagraph snapshot.

The snapshot is refreshed in the background (the subnet's reference miner never re-syncs, so new validator
permits were ignored until a restart). The blacklist answers from memory, before any work is done; priority
is the caller's stake. In `local` network mode the validators are a fixed list of hotkeys; no chain is used.

Competition synapses are the subnet owner's alone (their answer can carry a GitHub token): the owner hotkey
is read from the chain with every metagraph sync, or configured in `local` mode; a validator permit is not
enough.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Registered hotkeys with their stake, those holding a validator permit, and the subnet owner."""

    stakes: dict[str, float]
    validators: frozenset[str]
    owner: str | None = None
    enforce_min_stake: bool = True

    @classmethod
    def from_metagraph(cls, metagraph, owner: str | None = None) -> Snapshot:
        """Read any object with bittensor Metagraph's `hotkeys`, `validator_permit` and `S`."""
        hotkeys = list(metagraph.hotkeys)
        stakes = {hotkey: float(metagraph.S[uid]) for uid, hotkey in enumerate(hotkeys)}
        validators = frozenset(
            hotkey for uid, hotkey in enumerate(hotkeys) if bool(metagraph.validator_permit[uid])
        )
        return cls(stakes, validators, owner)

    @classmethod
    def local(cls, validator_hotkeys: Iterable[str], owner: str | None = None) -> Snapshot:
        """A chain-free snapshot: the listed hotkeys are validators with no stake, so no minimum applies."""
        hotkeys = frozenset(validator_hotkeys)
        return cls({hotkey: 0.0 for hotkey in hotkeys}, hotkeys, owner, enforce_min_stake=False)


SnapshotSource = Callable[[], Awaitable[Snapshot]]


class ChainMetagraph:
    """Reads subnet `netuid` from a subtensor (blocking calls, run in a thread)."""

    def __init__(self, network: str, netuid: int, chain_endpoint: str | None = None) -> None:
        self._network = chain_endpoint or network
        self._netuid = netuid
        self._subtensor = None

    def _connect(self):
        if self._subtensor is None:
            import bittensor

            self._subtensor = bittensor.Subtensor(network=self._network)
        return self._subtensor

    def _load(self) -> Snapshot:
        subtensor = self._connect()
        metagraph = subtensor.metagraph(self._netuid, lite=True)
        return Snapshot.from_metagraph(metagraph, owner=subtensor.get_subnet_owner_hotkey(self._netuid))

    async def __call__(self) -> Snapshot:
        return await asyncio.to_thread(self._load)

    async def publish(self, axon) -> None:
        """Announce the axon's external ip:port on chain so validators can reach it."""
        await asyncio.to_thread(self._connect().serve_axon, self._netuid, axon)


class ValidatorDirectory:
    """Blacklist and priority decisions from the latest snapshot; `start()` syncs once, then periodically."""

    def __init__(
        self, source: SnapshotSource, *, min_stake: float = 0.0, sync_seconds: float = 600.0
    ) -> None:
        self._source = source
        self._min_stake = min_stake
        self._sync_seconds = sync_seconds
        self._snapshot = Snapshot({}, frozenset(), enforce_min_stake=False)
        self._syncer: asyncio.Task | None = None

    async def start(self) -> None:
        """The first sync must succeed: a gateway that cannot tell validators apart must not serve."""
        await self.sync()
        self._syncer = asyncio.create_task(self._sync_forever(), name="metagraph sync")

    async def sync(self) -> None:
        self._snapshot = await self._source()
        log.info(
            "metagraph synced",
            extra={
                "hotkeys": len(self._snapshot.stakes),
                "validators": len(self._snapshot.validators),
                "owner": self._snapshot.owner or "",
            },
        )

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sync_seconds)
            try:
                await self.sync()
            except Exception:  # noqa: BLE001 - keep serving from the last good snapshot
                log.exception("metagraph sync failed; keeping the previous snapshot")

    async def close(self) -> None:
        if self._syncer is not None:
            self._syncer.cancel()

    def is_registered(self, hotkey: str) -> bool:
        return hotkey in self._snapshot.stakes

    def refuse(self, hotkey: str | None) -> str | None:
        """Why a work or info request from `hotkey` is refused, or None when it may proceed."""
        snapshot = self._snapshot
        if not hotkey:
            return "missing dendrite or hotkey"
        if hotkey not in snapshot.stakes:
            return "unknown hotkey"
        if hotkey not in snapshot.validators:
            return "non-validator hotkey"
        if snapshot.enforce_min_stake and self._min_stake and snapshot.stakes[hotkey] < self._min_stake:
            return f"stake below the minimum of {self._min_stake:g}"
        return None

    def refuse_competition(self, hotkey: str | None) -> str | None:
        """Why a competition synapse from `hotkey` is refused: only the subnet owner may send them."""
        owner = self._snapshot.owner
        if not hotkey:
            return "missing dendrite or hotkey"
        if not owner:
            return "subnet owner hotkey unavailable"
        if hotkey != owner:
            return "competition requests are restricted to the subnet owner"
        return None

    def stake(self, hotkey: str | None) -> float:
        return self._snapshot.stakes.get(hotkey or "", 0.0)
