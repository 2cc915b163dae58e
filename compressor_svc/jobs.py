"""A bounded job queue: `max_running` jobs at once, `max_waiting` more may wait, the rest are refused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from mesh.errors import Busy


class JobSlots:
    def __init__(self, max_running: int, max_waiting: int) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._running = asyncio.Semaphore(max_running)
        self.admitted = 0

    @property
    def waiting(self) -> int:
        return max(0, self.admitted - self.max_running)

    def admit(self) -> None:
        """Take a place in the queue now, or raise Busy (RESOURCE_EXHAUSTED) when the queue is full."""
        if self.admitted >= self.max_running + self.max_waiting:
            raise Busy(f"compressor busy: {self.max_running} job(s) running and {self.max_waiting} waiting; "
                       "retry later or on another replica")
        self.admitted += 1

    def release(self) -> None:
        """Leave the queue (exactly once per `admit()`, whether the job ran, failed or was cancelled)."""
        self.admitted -= 1

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """After `admit()`: wait for a running slot and hold it for the body."""
        async with self._running:
            yield
