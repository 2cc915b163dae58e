"""The items of one synapse, planned as a whole.

A validator sends up to five videos in one synapse with one deadline. Each item's step gets a share of
the time left: the time divided by the rounds of work still ahead of the batch (its unfinished items over
the jobs that run at once), weighted by what the item needs against the other unfinished items (the caller
knows: an x265 item costs more than an SVT-AV1 one), so the first item cannot spend what the last needs. And since the
validator zeroes two outputs of one synapse with the same file size (it may send one input twice), an
output whose size another item of the batch already has is remuxed with a padding tag until it differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mesh.ffmpeg import run_ffmpeg

STALE_SECONDS = 3600.0  # a batch whose items never all finished is forgotten after this long


@dataclass(frozen=True)
class BatchRef:
    """One item's place in its synapse; an empty id is a batch of one."""

    id: str = ""
    size: int = 1
    index: int = 0
    weights: tuple[float, ...] = ()  # per item, index-aligned; () = equal

    def weight(self, index: int) -> float:
        return self.weights[index] if self.weights else 1.0

    @property
    def alone(self) -> bool:
        return not self.id or self.size <= 1


@dataclass
class _Batch:
    finished: set[int] = field(default_factory=set)  # item indices
    sizes: set[int] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    touched: float = field(default_factory=time.monotonic)


class BatchPlanner:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self._batches: dict[str, _Batch] = {}

    def _get(self, batch: BatchRef) -> _Batch:
        now = time.monotonic()
        for key in [k for k, b in self._batches.items() if now - b.touched > STALE_SECONDS]:
            del self._batches[key]
        state = self._batches.setdefault(batch.id, _Batch())
        state.touched = now
        return state

    @contextlib.contextmanager
    def member(self, batch: BatchRef) -> Iterator[None]:
        """An item of `batch` for the block: it counts as unfinished until the block ends."""
        try:
            yield
        finally:
            if not batch.alone:
                state = self._get(batch)
                state.finished.add(batch.index)
                if len(state.finished) >= batch.size:
                    self._batches.pop(batch.id, None)

    def share(self, batch: BatchRef, seconds_left: float) -> float:
        """This item's share of `seconds_left`, the deadline its whole batch shares."""
        if batch.alone:
            return seconds_left
        finished = self._get(batch).finished
        unfinished = [index for index in range(batch.size) if index not in finished or index == batch.index]
        mean_weight = sum(batch.weight(index) for index in unfinished) / len(unfinished)
        rounds = math.ceil(len(unfinished) / self.concurrency)
        return min(seconds_left, seconds_left / rounds * batch.weight(batch.index) / mean_weight)

    async def make_distinct(self, batch: BatchRef, output: Path) -> None:
        """Remux `output` with a padding tag (stream copy) while its size equals another item's in `batch`."""
        if batch.alone:
            return
        state = self._get(batch)
        async with state.lock:
            padding = 0
            while output.stat().st_size in state.sizes:
                padding += 1 + batch.index
                padded = output.with_name(f"padded-{output.name}")
                await run_ffmpeg(["-y", "-loglevel", "error", "-i", str(output), "-map", "0", "-c", "copy",
                                  "-metadata", f"comment={'.' * padding}", "-movflags", "+faststart",
                                  str(padded)], timeout=60)
                padded.replace(output)
            state.sizes.add(output.stat().st_size)
