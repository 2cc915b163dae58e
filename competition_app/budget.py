"""Time and cores. The request carries no deadline, so the service computes the validator's own
(competition/timeouts.py at subnet HEAD) from the probed inputs and keeps a margin back from it."""

from __future__ import annotations

import math
import os
from pathlib import Path

LANES = 5
GRACE_SECONDS = 60
BASE_WORK_SECONDS = 120
CHUNK_SECONDS = 600
REFERENCE_PIXELS = 3840 * 2160


def video_work(duration: float, width: int, height: int) -> float:
    """The validator's work estimate for one item: 120 s per started 10 minutes at 4K, at least 120 s."""
    scale = width * height / REFERENCE_PIXELS
    return max(BASE_WORK_SECONDS, math.ceil(duration / CHUNK_SECONDS) * BASE_WORK_SECONDS * scale)


def batch_timeout(works: list[float], floor_seconds: float) -> int:
    """The validator's batch timeout: items spread over five lanes longest first, the heaviest lane plus
    a minute's grace, never under the manifest's floor."""
    lanes = [0.0] * LANES
    for work in sorted(works, reverse=True):
        lanes[lanes.index(min(lanes))] += work
    return math.ceil(max(max(lanes) + GRACE_SECONDS, floor_seconds))


def usable_seconds(timeout: float, margin_seconds: float, margin_fraction: float) -> float:
    """What the items may spend of `timeout`: the rest is for muxing, moving and answering."""
    return max(0.0, timeout - margin_seconds - margin_fraction * timeout)


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: the cgroup v2 quota (what the sandbox bills) when there is one,
    else the CPU affinity."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = (cgroup_root / "cpu.max").read_text(encoding="utf-8").split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)
