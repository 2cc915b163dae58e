"""Lanes of work that pause as a whole: an organic job's ffmpeg processes stop while a synthetic round runs.

A job runs inside `in_lane(name)`; every ffmpeg process started inside it (`mesh.ffmpeg`) is registered
while it runs. `pause(name)` stops the lane's process groups (SIGSTOP) and any started while paused,
`resume(name)` continues them (SIGCONT). A stopped process can still be killed, so cancellation and
timeouts keep working. State is per process: each service process has its own lanes.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
from collections.abc import Iterator

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("mesh_lane", default=None)
_groups: dict[str, set[int]] = {}
_paused: set[str] = set()


@contextlib.contextmanager
def in_lane(name: str) -> Iterator[None]:
    """Mark the work of the current task (and the threads it starts with asyncio.to_thread) as `name`'s."""
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def _signal(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


@contextlib.contextmanager
def tracked(group: int) -> Iterator[None]:
    """Register a started process group in the current lane (if any) for as long as it runs."""
    lane = _current.get()
    if lane is None:
        yield
        return
    members = _groups.setdefault(lane, set())
    members.add(group)
    if lane in _paused:
        _signal(group, signal.SIGSTOP)
    try:
        yield
    finally:
        members.discard(group)


def pause(lane: str) -> None:
    """Stop every process of `lane` now and every one it starts until `resume`."""
    _paused.add(lane)
    for group in list(_groups.get(lane, ())):
        _signal(group, signal.SIGSTOP)


def resume(lane: str) -> None:
    _paused.discard(lane)
    for group in list(_groups.get(lane, ())):
        _signal(group, signal.SIGCONT)


def paused(lane: str) -> bool:
    return lane in _paused
