"""Progress of one media job: the stage, its counters, stage timings, and a heartbeat.

Worker threads and coroutines update the reporter's counters; the reporter emits on the event loop, at
every stage start, the last count of a counting stage, and a snapshot at least every HEARTBEAT_SECONDS, so
a streaming caller always hears from a job that is still working.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

HEARTBEAT_SECONDS = 0.5
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Progress:
    stage: str
    done: int = 0
    total: int = 0
    unit: str = ""
    rate: float = 0.0
    message: str = ""


ProgressFn = Callable[[Progress], None]


class ProgressReporter:
    """Holds the current stage and counters and emits `Progress` to `on_progress`.

    `stage()` starts a stage (and closes the last one's timing); `update()` or plain assignment to `done`,
    `total` and `message` changes the counters (from any thread); `timings` sums seconds per stage name.
    """

    def __init__(self, on_progress: ProgressFn | None = None) -> None:
        self._on_progress = on_progress
        self.stage_name = ""
        self.total = 0
        self.unit = ""
        self.message = ""
        self.done = 0
        self._started = time.monotonic()
        self._pending: collections.deque[Progress] = collections.deque()
        self.timings: dict[str, float] = {}

    def stage(self, name: str, total: int = 0, unit: str = "", message: str = "") -> None:
        now = time.monotonic()
        if self.stage_name:
            self.timings[self.stage_name] = self.timings.get(self.stage_name, 0.0) + now - self._started
            if self.unit and self.done:
                self._pending.append(self.snapshot())
        self.stage_name, self.total, self.unit, self.message, self.done = name, total, unit, message, 0
        self._started = now
        if name:
            self._pending.append(self.snapshot())

    def update(self, stage: str, done: int = 0, total: int = 0, unit: str = "", message: str = "") -> None:
        """Set the whole state at once: a new stage name starts a stage, the same one updates it and is
        emitted at once (the message changed)."""
        if stage != self.stage_name:
            self.stage(stage, total, unit, message)
        self.done, self.total, self.unit, self.message = done, total, unit, message
        self._pending.append(self.snapshot())

    def finish(self) -> None:
        """Close the last stage's timing."""
        self.stage("")

    def snapshot(self) -> Progress:
        elapsed = time.monotonic() - self._started
        rate = self.done / elapsed if elapsed > 0 and self.unit else 0.0
        return Progress(self.stage_name, self.done, self.total, self.unit, rate, self.message)

    def _emit(self, progress: Progress) -> None:
        if self._on_progress is not None:
            self._on_progress(progress)

    def flush(self) -> bool:
        """Emit what was recorded since the last call (event-loop thread only)."""
        emitted = bool(self._pending)
        while self._pending:
            self._emit(self._pending.popleft())
        return emitted

    async def _tick(self) -> None:
        last_emit = time.monotonic()
        while True:
            now = time.monotonic()
            if self.flush():
                last_emit = now
            elif self.stage_name and now - last_emit >= HEARTBEAT_SECONDS:
                self._emit(self.snapshot())
                last_emit = now
            await asyncio.sleep(_POLL_SECONDS)

    @contextlib.asynccontextmanager
    async def emitting(self) -> AsyncIterator[ProgressReporter]:
        """Emit in the background while the block runs; everything recorded is emitted before it exits."""
        ticker = asyncio.create_task(self._tick())
        try:
            yield self
        finally:
            ticker.cancel()
            self.flush()


@contextlib.asynccontextmanager
async def reporting(reporter: ProgressReporter | None, on_progress: ProgressFn | None
                    ) -> AsyncIterator[ProgressReporter]:
    """The caller's reporter as it is (the caller runs its emitting), or a new one emitting to
    `on_progress` for the block: how a core accepts either."""
    if reporter is not None:
        yield reporter
        return
    async with ProgressReporter(on_progress).emitting() as own:
        yield own
