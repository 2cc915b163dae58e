"""The two routes. /health answers at once, while the compressor core loads in the background. /compress
answers every validly shaped request with HTTP 200 and exactly one result per item, in order: the assigned
output path, or null for an item that was refused or failed. Items run at the same time, sharing the cores,
against one deadline computed as the validator computes its timeout."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import time
from pathlib import Path
from types import ModuleType

from starlette.requests import Request
from starlette.responses import JSONResponse

from competition_app.budget import available_cpus, batch_timeout, usable_seconds, video_work
from competition_app.contract import Item, parse_items, response
from competition_app.paths import PathRefused, duplicates, resolve_input, resolve_output
from competition_app.settings import CompetitionSettings

log = logging.getLogger(__name__)


class Routes:
    """The handlers and what they share: the settings and the core, loaded once in the background."""

    def __init__(self, settings: CompetitionSettings) -> None:
        self.settings = settings
        self._core: asyncio.Task[ModuleType] | None = None

    def start_loading(self) -> None:
        """Import the core (and look for NVENC) in a thread, so /health does not wait for it."""
        self._core = asyncio.create_task(asyncio.to_thread(_load_core, self.settings.allow_hardware))

    async def core(self) -> ModuleType:
        if self._core is None:
            self.start_loading()
        return await self._core

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "competition_local_io": {"remote_io_disabled": True},
                             "core_loaded": bool(self._core and self._core.done() and not self._core.exception())})

    async def compress(self, request: Request) -> JSONResponse:
        started = time.monotonic()
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            body = None
        items, reasons = parse_items(body)
        for index, reason in enumerate(reasons):
            if reason:
                log.warning("item %d refused: %s", index, reason)
        try:
            outputs = await self._batch(items, started) if any(items) else [None] * len(items)
        except Exception:  # noqa: BLE001 - the answer is always 200 and well-formed; a bug fails the items only
            log.exception("batch failed")
            outputs = [None] * len(items)
        return JSONResponse(response(outputs))

    async def _batch(self, items: list[Item | None], started: float) -> list[str | None]:
        settings = self.settings
        targets: list[tuple[Path, Path] | None] = []
        for index, item in enumerate(items):
            try:
                targets.append(None if item is None else (resolve_input(item.input_path, settings.input_root),
                                                          resolve_output(item.output_path, settings.output_root)))
            except PathRefused as exc:
                log.warning("item %d refused: %s", index, exc)
                targets.append(None)
        repeated = duplicates([target[1] if target else None for target in targets])
        targets = [None if target and target[1] in repeated else target for target in targets]
        core = await self.core()
        plans = await asyncio.gather(*(_plan(core, item, target) for item, target in zip(items, targets)))
        accepted = [plan for plan in plans if plan is not None]
        if not accepted:
            return [None] * len(items)
        works = [video_work(plan.facts.duration, plan.facts.width, plan.facts.height) for plan in accepted]
        timeout = settings.batch_timeout_seconds or batch_timeout(works, settings.deadline_floor_seconds)
        deadline = started + usable_seconds(timeout, settings.margin_seconds, settings.margin_fraction)
        threads = max(1, (settings.cpus or available_cpus()) // len(accepted))
        log.info("batch of %d, %d accepted: timeout %g s, %d threads per item", len(items), len(accepted),
                 timeout, threads)

        async def one(plan) -> str | None:
            if plan is None:
                return None
            try:
                # The hard stop: an item still running half a margin after the deadline is cancelled (its
                # ffmpeg children are killed), so the answer always beats the validator's timeout.
                await asyncio.wait_for(core.run(plan, deadline=deadline, threads=threads, settings=settings),
                                       timeout=max(0.0, deadline - time.monotonic()) + settings.margin_seconds / 2)
            except Exception as exc:  # noqa: BLE001 - any failure of one item is that item's null
                log.warning("item %s failed: %s: %s", plan.output.name, type(exc).__name__, str(exc)[:500])
                return None
            return plan.item.output_path

        return list(await asyncio.gather(*(one(plan) for plan in plans)))


def _load_core(allow_hardware: bool) -> ModuleType:
    core = importlib.import_module("competition_app.item")
    core.warm_up(allow_hardware)
    return core


async def _plan(core: ModuleType, item: Item | None, target: tuple[Path, Path] | None):
    """The item's plan with its source probed; None when it was refused or the source is not a video."""
    if item is None or target is None:
        return None
    try:
        facts = await asyncio.to_thread(core.probe_source, target[0])
    except Exception as exc:  # noqa: BLE001 - an unreadable source fails its item only
        log.warning("item %s refused: %s", target[1].name, str(exc)[:300])
        return None
    return core.Plan(item, target[0], target[1], facts)
