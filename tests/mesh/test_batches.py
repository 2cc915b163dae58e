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


def test_weighted_shares_follow_what_each_unfinished_item_needs():
    weights = (1.0, 1.25, 1.2, 1.0, 1.25)
    planner = BatchPlanner(concurrency=1)
    batch = [BatchRef("synapse-w", 5, index, weights) for index in range(5)]
    with planner.member(batch[0]):
        assert planner.share(batch[0], 170.0) == pytest.approx(170.0 * 1.0 / sum(weights))
    with planner.member(batch[1]):
        assert planner.share(batch[1], 140.0) == pytest.approx(140.0 * 1.25 / sum(weights[1:])), \
            "the finished item's weight no longer counts"
    with planner.member(batch[4]):  # out of order: items 2 and 3 are still unfinished
        assert planner.share(batch[4], 100.0) == pytest.approx(100.0 * 1.25 / (1.2 + 1.0 + 1.25))
    for index in (2, 3):
        with planner.member(batch[index]):
            pass
    heavy = BatchRef("synapse-h", 2, 0, (9.0, 1.0))
    assert BatchPlanner(concurrency=2).share(heavy, 60.0) == 60.0, "never more than the time left"


def test_batch_weights_from_the_contract_are_checked():
    from mesh.errors import InvalidInput
    from mesh.rpc import batch_from_proto
    from mesh.v1 import common_pb2

    ref = batch_from_proto(common_pb2.Batch(id="s", size=2, index=1, weights=[1.0, 1.25]))
    assert ref.weights == (1.0, 1.25) and ref.weight(1) == 1.25
    assert batch_from_proto(common_pb2.Batch(id="s", size=2, index=0)).weights == ()
    for bad in ([1.0], [1.0, 0.0], [1.0, float("nan")], [1.0, -2.0]):
        with pytest.raises(InvalidInput, match="weights"):
            batch_from_proto(common_pb2.Batch(id="s", size=2, index=0, weights=bad))


def test_x265_and_high_thresholds_weigh_more():
    from mesh.codecs import compression_time_weight

    assert compression_time_weight("av1", 85) == 1.0
    assert compression_time_weight("HEVC", 89) > compression_time_weight("av1", 89)
    assert compression_time_weight("av1", 93) > compression_time_weight("av1", 89)
    assert compression_time_weight("theora", 85) == 1.0


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
