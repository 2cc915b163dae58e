"""A synapse planned as a whole: fair time shares, distinct output sizes, synthetic before organic."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from mesh import lanes
from mesh.batches import BatchPlanner, BatchRef
from mesh.ffmpeg import run_ffmpeg, run_ffmpeg_sync
from mesh.media import probe
from mesh.scheduling import ORGANIC, SYNTHETIC, LaneSlots


def test_each_item_gets_a_fair_share_of_what_is_left():
    planner = BatchPlanner(concurrency=1)
    batch = [BatchRef("synapse-1", 5, index) for index in range(5)]
    left, shares = 170.0, []
    for item in batch:
        with planner.member(item):
            shares.append(planner.share(item, left))
            left -= shares[-1] * 0.8  # each item finishes a little early
    assert shares[0] == pytest.approx(34.0)
    assert all(share >= 34.0 - 1e-9 for share in shares), "a later item never gets less than an equal split"
    assert shares[-1] == pytest.approx(left + shares[-1] * 0.8), "the last item gets all that is left"
    assert planner.share(BatchRef(), 50.0) == 50.0, "a lone item has the whole deadline"
    two_at_once = BatchPlanner(concurrency=2)
    assert two_at_once.share(BatchRef("s", 5, 0), 120.0) == pytest.approx(40.0), "5 items on 2 slots: 3 rounds"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "clip.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=128x72:r=30:d=1", "-c:v", "libx264",
                     "-pix_fmt", "yuv420p", str(path)], timeout=60)
    return path


async def test_equal_outputs_of_one_batch_are_made_to_differ_in_size(clip: Path, tmp_path: Path):
    """The validator zeroes two items of one synapse with the same file size (it may repeat an input)."""
    planner = BatchPlanner(concurrency=1)
    outputs = [shutil.copy(clip, tmp_path / f"out{index}.mp4") for index in range(3)]
    for index, output in enumerate(outputs):
        await planner.make_distinct(BatchRef("synapse", 3, index), Path(output))
    sizes = [Path(output).stat().st_size for output in outputs]
    assert len(set(sizes)) == 3, sizes
    assert all(probe(output).frame_count == probe(clip).frame_count for output in outputs)
    other = shutil.copy(clip, tmp_path / "other-synapse.mp4")
    await planner.make_distinct(BatchRef("another", 2, 0), Path(other))
    assert Path(other).stat().st_size == clip.stat().st_size, "another synapse's outputs are left alone"


def _stat(pid: int) -> tuple[str, int]:
    """A process's state letter and its CPU ticks so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[11]) + int(fields[12])


async def test_organic_work_waits_and_pauses_while_synthetic_work_runs(tmp_path: Path):
    slots = LaneSlots(concurrency=1)
    order: list[str] = []
    release_synthetic = asyncio.Event()

    async def organic_encode() -> float:
        async with slots.slot(ORGANIC):
            with lanes.in_lane(ORGANIC):
                order.append("organic started")
                started = time.monotonic()
                await run_ffmpeg(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=30",
                                  "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-f", "null", "-"],
                                 timeout=120)
                return time.monotonic() - started

    organic = asyncio.create_task(organic_encode())
    for _ in range(100):
        children = [p for p in lanes._groups.get(ORGANIC, ())]
        if children:
            break
        await asyncio.sleep(0.02)
    assert children, "the organic ffmpeg is registered in its lane"

    async def synthetic() -> None:
        async with slots.slot(SYNTHETIC):
            order.append("synthetic running")
            await release_synthetic.wait()

    round_task = asyncio.create_task(synthetic())
    await asyncio.sleep(0.3)
    assert order == ["organic started", "synthetic running"], "synthetic work does not wait for organic work"
    state, ticks = _stat(children[0])
    assert state == "T", "the organic ffmpeg is stopped while a synthetic job runs"
    queued = asyncio.create_task(organic_encode())
    await asyncio.sleep(1.0)
    assert order.count("organic started") == 1, "a new organic job does not start while synthetic work runs"
    assert _stat(children[0]) == (state, ticks), "a stopped encode uses no CPU"
    release_synthetic.set()
    await round_task
    await asyncio.sleep(0.5)
    assert _stat(children[0])[1] > ticks, "the organic encode continues once the synthetic work is done"
    await asyncio.gather(organic, queued)
    assert not lanes.paused(ORGANIC)
    assert order.count("organic started") == 2
