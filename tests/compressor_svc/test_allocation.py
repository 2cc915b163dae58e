"""Choosing the split: a split that reaches the floor only under the validator's 1.25 ratio gate earns 0,
so the best split that earns something wins over it."""

from __future__ import annotations

import dataclasses

from compressor_svc.allocation import choose_allocation, predicted_score
from compressor_svc.context import JobContext, SceneState
from compressor_svc.job import CompressJob, CompressOptions, Targets
from compressor_svc.planning import Clock, CostModel
from compressor_svc.scenes import Scene
from compressor_svc.search import Probe
from mesh.codecs import select_encoder
from mesh.ffmpeg import run_ffmpeg_sync
from mesh.media import probe
from mesh.progress import ProgressReporter


def test_a_split_that_earns_nothing_loses_to_one_that_earns_something(tmp_path):
    clip = tmp_path / "clip.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=30:d=1",
                     "-c:v", "libx264", str(clip)], timeout=60)
    # A grainy source: VMAF-NEG 93.5 (the floor) costs nearly the source's own size.
    source = dataclasses.replace(probe(clip), size_bytes=1_000_000, frame_count=900)
    job, options = CompressJob(93, "av1"), CompressOptions(allow_hardware=False)
    encoder = select_encoder("av1", allow_hardware=False)
    ctx = JobContext(source_path=clip, source=source, workdir=tmp_path, job=job, options=options,
                     targets=Targets.of(job, options), clock=Clock(600), costs=CostModel(encoder, 2),
                     encoder=encoder, reporter=ProgressReporter())
    ctx.on_proxy = True
    state = SceneState(Scene(0, 0, 900), "10")
    ctx.scenes = [state]
    state.record(Probe(20, 95.0, 950_000))
    state.record(Probe(30, 92.6, 740_000))
    choice = choose_allocation(ctx)
    assert predicted_score(ctx, choice) > 0, choice
    assert source.size_bytes / choice.size > 1.25, "over the validator's ratio gate"
    assert choice.vmaf_neg < ctx.targets.floor, "the floor was only reachable under the gate"
