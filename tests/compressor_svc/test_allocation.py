"""Choosing the plan and the split: a clip long enough for a proxy is not searched whole at a preset faster
than the default; a split that reaches the floor only under the validator's 1.25 ratio gate earns 0, so the
best split that earns something wins over it."""

from __future__ import annotations

import dataclasses

from compressor_svc.allocation import choose_allocation, predicted_score
from compressor_svc.context import JobContext, SceneState
from compressor_svc.job import CompressJob, CompressOptions, Targets
from compressor_svc.planning import Clock, CostModel, expected_seconds, plan
from compressor_svc.scenes import Scene
from compressor_svc.search import Probe
from mesh.codecs import select_encoder
from mesh.ffmpeg import run_ffmpeg_sync
from mesh.media import probe
from mesh.progress import ProgressReporter


def context(tmp_path, **facts) -> JobContext:
    """A T-93 AV1 job whose source facts are `facts` over a real (tiny) clip's."""
    clip = tmp_path / "clip.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=30:d=1",
                     "-c:v", "libx264", str(clip)], timeout=60)
    source = dataclasses.replace(probe(clip), **facts)
    job, options = CompressJob(93, "av1"), CompressOptions(allow_hardware=False, threads=2)
    encoder = select_encoder("av1", allow_hardware=False)
    return JobContext(source_path=clip, source=source, workdir=tmp_path, job=job, options=options,
                      targets=Targets.of(job, options), clock=Clock(600), costs=CostModel(encoder, 2),
                      encoder=encoder, reporter=ProgressReporter())


def test_a_clip_long_enough_for_a_proxy_is_not_searched_whole_at_a_faster_preset(tmp_path):
    ctx = context(tmp_path, width=960, height=544, frame_count=900)
    ctx.scenes = [SceneState(Scene(0, 0, 900), "8")]
    fastest, default = expected_seconds(ctx, "10", 1.0, 1), expected_seconds(ctx, "8", 1.0, 1)
    assert fastest < default
    ctx.clock = Clock((fastest + default) / 2 / 0.7)  # one probe per scene fits only faster than the default
    assert plan(ctx) > 0 and ctx.scenes[0].preset in ("9", "10")
    assert plan(ctx, faster_presets=False) == 0, "the caller searches a proxy at the default preset instead"


def test_a_split_that_earns_nothing_loses_to_one_that_earns_something(tmp_path):
    # A grainy source: VMAF-NEG 93.5 (the floor) costs nearly the source's own size.
    ctx = context(tmp_path, size_bytes=1_000_000, frame_count=900)
    source = ctx.source
    ctx.on_proxy = True
    state = SceneState(Scene(0, 0, 900), "10")
    ctx.scenes = [state]
    state.record(Probe(20, 95.0, 950_000))
    state.record(Probe(30, 92.6, 740_000))
    choice = choose_allocation(ctx)
    assert predicted_score(ctx, choice) > 0, choice
    assert source.size_bytes / choice.size > 1.25, "over the validator's ratio gate"
    assert choice.vmaf_neg < ctx.targets.floor, "the floor was only reachable under the gate"
