"""Synthetic before organic: a validator's scored round never waits for a paying job.

Synthetic and organic jobs run in separate lanes of `concurrency` slots each. An organic job starts only
while no synthetic job waits or runs; while one does, the organic lane is paused (`mesh.lanes`: its ffmpeg
processes stopped), and it continues once the last synthetic job is done. So an organic job in flight
costs a synthetic round nothing but the memory it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from mesh import lanes

SYNTHETIC = "synthetic"
ORGANIC = "organic"
PRIORITIES = (SYNTHETIC, ORGANIC)


class LaneSlots:
    def __init__(self, concurrency: int) -> None:
        self._slots = {SYNTHETIC: asyncio.Semaphore(concurrency), ORGANIC: asyncio.Semaphore(concurrency)}
        self._synthetic = 0  # waiting or running
        self._clear = asyncio.Event()
        self._clear.set()

    @property
    def synthetic_active(self) -> int:
        return self._synthetic

    @contextlib.asynccontextmanager
    async def slot(self, priority: str) -> AsyncIterator[None]:
        if priority not in PRIORITIES:
            raise ValueError(f"unknown priority {priority!r}")
        if priority == ORGANIC:
            async with self._slots[ORGANIC]:
                await self._clear.wait()
                yield
            return
        self._synthetic += 1
        self._clear.clear()
        lanes.pause(ORGANIC)
        try:
            async with self._slots[SYNTHETIC]:
                yield
        finally:
            self._synthetic -= 1
            if not self._synthetic:
                self._clear.set()
                lanes.resume(ORGANIC)
