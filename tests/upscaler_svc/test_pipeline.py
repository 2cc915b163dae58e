"""The gRPC-free core on tiny real clips: exact frames/fps/size, encoding facts, size cap, cancellation,
bad inputs. Everything runs for real (PyAV, the CPU engine, imageio-ffmpeg's encoders)."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mesh.codecs import resolve_scale
from mesh.errors import GateFailed, InvalidInput
from mesh.gates import all_passed
from mesh.media import MP4_CONTAINER, probe
from tests.upscaler_svc.conftest import (
    CLIP_14_985,
    CLIP_25,
    CLIP_29_97,
    CLIP_BUSY,
    CLIP_PORTRAIT,
    encode_clip,
    ffmpeg_children,
    lavfi_clip,
    truncated_clip,
)
from upscaler_svc.encode import EncoderSettings, size_cap_bytes
from upscaler_svc.pipeline import PipelineLimits, UpscalePipeline

FAST = EncoderSettings(x265_preset="ultrafast", svtav1_preset=10)


def run(pipeline: UpscalePipeline, source: Path, output: Path, scale: int, codec: str = "hevc",
        progress=None):
    return asyncio.run(pipeline.run(source, output, scale=scale, codec=codec, on_progress=progress))


def faststart(path: Path) -> bool:
    data = path.read_bytes()
    return 0 <= data.find(b"moov") < data.find(b"mdat")


@pytest.mark.parametrize("clip, frames, width, scale, codec", [
    (CLIP_29_97, 5, 64, 2, "hevc"),
    (CLIP_14_985, 4, 64, 4, "hevc"),
    (CLIP_25, 4, 96, 2, "av1"),
    (CLIP_PORTRAIT, 3, 54, 2, "hevc"),
], ids=["29.97fps-x2-hevc", "14.985fps-x4-hevc", "25fps-x2-av1", "portrait-x2-hevc"])
def test_output_keeps_exact_frames_fps_and_scaled_size(tiny_clips, cpu_engine, tmp_path, clip, frames, width,
                                                       scale, codec):
    source = tiny_clips(clip, frames=frames, width=width)
    outcome = run(UpscalePipeline(cpu_engine, encoder_settings=FAST), source, tmp_path / "out.mp4", scale,
                  codec)
    facts = probe(tmp_path / "out.mp4")
    src = probe(source)
    assert facts.frame_count == src.frame_count == frames
    assert facts.fps == src.fps and isinstance(facts.fps, Fraction)
    assert (facts.width, facts.height) == (src.width * scale, src.height * scale)
    assert facts.codec == codec and facts.profile == "Main" and facts.pix_fmt == "yuv420p"
    assert facts.container == MP4_CONTAINER and facts.sample_aspect_ratio == "1:1"
    assert facts.size_bytes <= size_cap_bytes(src, scale)
    assert faststart(tmp_path / "out.mp4")
    assert all_passed(outcome.gates)
    assert {gate.name for gate in outcome.gates} >= {"frame_count", "resolution", "size_cap"}


def test_ntsc_rates_are_exact_rationals(tiny_clips, cpu_engine, tmp_path):
    pipeline = UpscalePipeline(cpu_engine, encoder_settings=FAST)
    for clip, rate in ((CLIP_29_97, Fraction(30000, 1001)), (CLIP_14_985, Fraction(15000, 1001))):
        outcome = run(pipeline, tiny_clips(clip), tmp_path / "o.mp4", 2)
        assert outcome.output.fps == rate
        with av.open(str(tmp_path / "o.mp4")) as container:
            assert container.streams.video[0].average_rate == rate


def test_b_frame_source_with_odd_size_keeps_every_frame(tiny_clips, cpu_engine, tmp_path):
    """An H.264 source with B-frames and odd dimensions (4:4:4, since 4:2:0 needs even sizes): output is
    still exactly x2 (even, so yuv420p is fine) with every frame."""
    source = encode_clip(tiny_clips(CLIP_BUSY, frames=7, width=96), tmp_path / "odd.mp4",
                         "-vf", "format=yuv444p,crop=63:41", "-c:v", "libx264", "-preset", "medium",
                         "-bf", "3", "-pix_fmt", "yuv444p")
    src = probe(source)
    assert (src.width, src.height, src.frame_count) == (63, 41, 7)
    outcome = run(UpscalePipeline(cpu_engine, encoder_settings=FAST), source, tmp_path / "out.mp4", 2)
    assert (outcome.output.width, outcome.output.height, outcome.output.frame_count) == (126, 82, 7)
    assert outcome.output.pix_fmt == "yuv420p"


def _plane_means(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return np.array([np.asarray(plane).mean() for plane in
                         (frame.to_ndarray(format="yuv420p")[:frame.height],)] +
                        [frame.to_ndarray(format="yuv420p")[frame.height:].mean()])


def test_bt709_tags_are_kept_and_colours_survive(tiny_clips, cpu_engine, tmp_path):
    tagged = encode_clip(tiny_clips(CLIP_25, frames=3, width=64), tmp_path / "bt709.mp4", "-vf",
                         "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
                         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    src = probe(tagged)
    assert src.color_tags == {"color_space": "bt709", "color_transfer": "bt709", "color_primaries": "bt709"}
    outcome = run(UpscalePipeline(cpu_engine, encoder_settings=FAST), tagged, tmp_path / "out.mp4", 2)
    assert outcome.output.color_tags == src.color_tags and outcome.output.color_range == "tv"
    # Same matrix both ways: luma and chroma levels of the upscaled frame match the source's.
    assert np.abs(_plane_means(tmp_path / "out.mp4") - _plane_means(tagged)).max() < 3


def test_untagged_source_gives_untagged_output(tiny_clips, cpu_engine, tmp_path):
    pipeline = UpscalePipeline(cpu_engine, encoder_settings=FAST)
    outcome = run(pipeline, tiny_clips(CLIP_29_97), tmp_path / "o.mp4", 2)
    assert outcome.source.color_space == "" and outcome.output.color_tags == outcome.source.color_tags


def test_bitrate_ceiling_keeps_output_under_the_size_cap(tiny_clips, cpu_engine, tmp_path):
    """A source squeezed to a few KB and an encoder asked for near-lossless quality: without the VBV
    ceiling the output would be far over 8x the input; with it the gate passes."""
    squeezed = encode_clip(tiny_clips(CLIP_BUSY, frames=6, width=96), tmp_path / "small.mp4",
                           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "51", "-pix_fmt", "yuv420p")
    src = probe(squeezed)
    greedy = EncoderSettings(x265_preset="ultrafast", x265_crf=0)
    outcome = run(UpscalePipeline(cpu_engine, encoder_settings=greedy), squeezed, tmp_path / "out.mp4", 2)
    assert outcome.output.size_bytes <= size_cap_bytes(src, 2)
    assert outcome.output.frame_count == src.frame_count


def test_progress_is_reported_with_frame_counts(tiny_clips, cpu_engine, tmp_path):
    events = []
    pipeline = UpscalePipeline(cpu_engine, encoder_settings=FAST)
    run(pipeline, tiny_clips(CLIP_29_97, frames=6), tmp_path / "o.mp4", 2, progress=events.append)
    stages = [event.stage for i, event in enumerate(events) if i == 0 or events[i - 1].stage != event.stage]
    assert stages == ["probe", "upscale", "encode", "verify"]
    upscale = [event for event in events if event.stage == "upscale"]
    assert all(event.total == 6 and event.unit == "frames" for event in upscale)
    assert [event.done for event in upscale] == sorted(event.done for event in upscale)
    assert upscale[-1].done == 6 and upscale[-1].rate > 0


def test_cancellation_stops_within_a_second_and_kills_ffmpeg(tiny_clips, cpu_engine, tmp_path):
    source = tiny_clips(CLIP_BUSY, frames=60, width=128)
    output = tmp_path / "out.mp4"
    pipeline = UpscalePipeline(cpu_engine, encoder_settings=FAST)

    async def scenario() -> float:
        started = asyncio.Event()

        def on_progress(event) -> None:
            if event.stage == "upscale" and event.done >= 1:
                started.set()

        job = asyncio.create_task(pipeline.run(source, output, scale=4, on_progress=on_progress))
        await asyncio.wait_for(started.wait(), 60)
        assert ffmpeg_children(), "the encoder should be running"
        cancelled_at = time.monotonic()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        return time.monotonic() - cancelled_at

    assert asyncio.run(scenario()) < 1.0
    deadline = time.monotonic() + 1.0
    while ffmpeg_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ffmpeg_children() == []
    assert list(tmp_path.iterdir()) == [], "neither the output nor its partial file is left"


def test_corrupt_text_and_zero_frame_files_are_invalid_input(tiny_clips, cpu_engine, tmp_path):
    pipeline = UpscalePipeline(cpu_engine, encoder_settings=FAST)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    corrupt = tmp_path / "corrupt.mp4"
    good = tiny_clips(CLIP_29_97).read_bytes()
    noise = np.random.default_rng(3).integers(0, 256, len(good) - 64, np.uint8)
    corrupt.write_bytes(good[:64] + noise.tobytes())
    zero = tmp_path / "zero.mp4"
    encode_clip(tiny_clips(CLIP_29_97), zero, "-frames:v", "0", "-c:v", "libx264")
    for bad in (text, corrupt, zero):
        with pytest.raises(InvalidInput):
            run(pipeline, bad, tmp_path / "out.mp4", 2)
        assert not (tmp_path / "out.mp4").exists()


def test_absurd_dimensions_are_invalid_input(cpu_engine, tmp_path):
    wide = lavfi_clip(tmp_path / "wide.mp4", "color=gray:s=4200x16:r=30", "-frames:v", "1", "-c:v", "libx264")
    with pytest.raises(InvalidInput, match="exceeds 8192"):
        run(UpscalePipeline(cpu_engine, encoder_settings=FAST), wide, tmp_path / "out.mp4", 2)
    tiny = lavfi_clip(tmp_path / "tiny.mp4", "color=gray:s=8x8:r=30", "-frames:v", "2", "-c:v", "libx264",
                      "-pix_fmt", "yuv420p")
    with pytest.raises(InvalidInput, match="smaller than"):
        run(UpscalePipeline(cpu_engine, limits=PipelineLimits()), tiny, tmp_path / "out.mp4", 2)


def test_task_types_fix_the_scale():
    assert [resolve_scale(t, None) for t in ("SD2HD", "HD24K", "SD24K", "4K28K")] == [2, 2, 4, 2]
    assert resolve_scale(None, 4) == 4 and resolve_scale("sd24k", 4) == 4
    for task_type, scale in (("SD24K", 2), (None, 3), ("8K216K", None)):
        with pytest.raises(InvalidInput):
            resolve_scale(task_type, scale)


def test_an_output_that_fails_a_gate_is_an_error_and_not_written(tiny_clips, cpu_engine, tmp_path):
    source = truncated_clip(tiny_clips, tmp_path / "truncated.mp4")
    assert probe(source).frame_count == 8
    with pytest.raises(GateFailed, match="frame_count"):
        run(UpscalePipeline(cpu_engine, encoder_settings=FAST), source, tmp_path / "out.mp4", 2)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["truncated.mp4", "whole.mp4"]
