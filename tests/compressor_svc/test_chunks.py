"""Chunked encodes: an encoder that leaves cores idle (x265) encodes a long scene as chunks side by side,
joined by stream copy into exactly the scene's frames."""

from __future__ import annotations

import pytest

from compressor_svc.assemble import MIN_CHUNK_FRAMES, chunk_scenes, encode_scene
from compressor_svc.context import JobContext, SceneState
from compressor_svc.job import CompressJob, CompressOptions, Targets
from compressor_svc.planning import Clock, CostModel
from compressor_svc.scenes import Scene
from mesh.codecs import select_encoder
from mesh.ffmpeg import run_ffmpeg_sync
from mesh.media import probe
from mesh.progress import ProgressReporter


def context(tmp_path, clip, codec: str, threads: int) -> JobContext:
    job, options = CompressJob(89, codec), CompressOptions(allow_hardware=False, threads=threads)
    encoder = select_encoder(codec, allow_hardware=False)
    return JobContext(source_path=clip, source=probe(clip), workdir=tmp_path, job=job, options=options,
                      targets=Targets.of(job, options), clock=Clock(600), costs=CostModel(encoder, threads),
                      encoder=encoder, reporter=ProgressReporter())


def make_clip(tmp_path, frames: int):
    clip = tmp_path / "clip.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=128x72:r=30", "-frames:v",
                     str(frames), "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(clip)], timeout=120)
    return clip


def test_only_long_scenes_of_an_idling_encoder_are_chunked(tmp_path):
    clip = make_clip(tmp_path, 10)
    scene = Scene(3, 100, 100 + 3 * MIN_CHUNK_FRAMES + 7)
    chunks = chunk_scenes(context(tmp_path, clip, "hevc", threads=2), scene)
    assert len(chunks) == 2, "one chunk per thread x265 keeps busy"
    assert chunks[0].start == scene.start and chunks[-1].end == scene.end
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:])), "contiguous, no frame lost or repeated"
    assert abs(chunks[0].frames - chunks[1].frames) <= 1
    assert len(chunk_scenes(context(tmp_path, clip, "hevc", threads=8), scene)) == 3, "chunks stay long"
    assert chunk_scenes(context(tmp_path, clip, "hevc", threads=2), Scene(0, 0, MIN_CHUNK_FRAMES)) == \
        [Scene(0, 0, MIN_CHUNK_FRAMES)]
    assert chunk_scenes(context(tmp_path, clip, "av1", threads=2), scene) == [scene], "SVT-AV1 fills the cores"


async def test_a_chunked_encode_holds_exactly_the_scene(tmp_path):
    frames = 2 * MIN_CHUNK_FRAMES + 11
    clip = make_clip(tmp_path, frames)
    ctx = context(tmp_path, clip, "hevc", threads=2)
    state = SceneState(Scene(0, 0, frames), "ultrafast")
    assert len(chunk_scenes(ctx, state.scene)) == 2
    output = await encode_scene(ctx, state, 28)
    facts = probe(output)
    assert facts.frame_count == frames and facts.codec == "hevc"
    assert not list(tmp_path.glob("*-chunk*")), "the chunk files are removed"


async def test_an_unmeasured_first_candidate_keeps_the_format_and_ratio_gates(tmp_path):
    """When the deadline leaves no time to measure, the output still passes the cheap gates and carries the
    search's prediction; an output under the 1.25x ratio does not pass."""
    from compressor_svc.search import Allocation
    from compressor_svc.verify import unverified

    frames = 60
    clip = make_clip(tmp_path, frames)
    ctx = context(tmp_path, clip, "av1", threads=2)
    state = SceneState(Scene(0, 0, frames), "10")
    small = await unverified(ctx, await encode_scene(ctx, state, 50), Allocation((50.0,), 90.5, 0.0))
    assert small.scores.vmaf_neg == pytest.approx(90.5) and small.meets
    assert {gate.name for gate in small.gates} >= {"resolution", "codec", "frame_count", "compression_ratio"}
    big = await unverified(ctx, await encode_scene(ctx, state, 1), Allocation((1.0,), 99.0, 0.0))
    assert not big.meets and big.score == 0.0, [gate for gate in big.gates if not gate.passed]
    assert any("no time to measure" in note for note in ctx.notes)
