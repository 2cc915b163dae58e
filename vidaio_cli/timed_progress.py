"""A progress bar that fills towards a time limit while some work is awaited.

The local validator shows one for every synapse it waits on (the limit is the synapse's timeout) and for
every answer it downloads and judges, so a slow miner is visible before its timeout runs out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from rich.progress import Progress

T = TypeVar("T")


async def tracked(progress: Progress | None, description: str, limit: float | None, work: Awaitable[T]) -> T:
    """Await `work` while a progress bar fills towards `limit` seconds (a synapse's timeout, a download's);
    with no limit the bar pulses."""
    if progress is None:
        return await work
    task_id = progress.add_task(description, total=limit)
    started = time.monotonic()
    future = asyncio.ensure_future(work)
    try:
        while not future.done():
            if limit is not None:
                progress.update(task_id, completed=min(limit, time.monotonic() - started))
            await asyncio.wait([future], timeout=0.25)
        return future.result()
    finally:
        finished = future.done() and not future.cancelled()
        future.cancel()
        outcome = "[dim]done[/]" if finished else "[red]stopped[/]"
        progress.update(task_id, total=limit or 1, completed=limit or 1, description=f"{description} {outcome}")
