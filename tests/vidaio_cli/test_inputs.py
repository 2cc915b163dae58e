"""The input builder makes what the subnet's video scheduler makes (spec §3.1, §4.1): 30 fps yuv420p
silent H.264 references with dimensions in multiples of 8 and a 30-frame GOP, exact frame counts, and
upscaling inputs of exactly reference / scale."""

from __future__ import annotations

import random
from pathlib import Path

import av
import pytest

from mesh.media import probe
from vidaio_cli.inputs import (
    build_compression_inputs,
    build_reference,
    build_upscaling_inputs,
    default_source,
    task_scale,
)

HD_CLIP = "synth_hd_1280x720_30fps.mp4"
LOW_FPS_CLIP = "synth_sd_480x360_14.99fps.mp4"
PORTRAIT_CLIP = "synth_portrait_406x720_30fps.mp4"


def keyframe_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = (packet for packet in container.demux(stream) if packet.size)
        return [index for index, packet in enumerate(packets) if packet.is_keyframe]


def test_task_scales_follow_the_subnet():
    assert [task_scale(t) for t in ("SD24K", "HD24K", "SD2HD", "4K28K")] == [4, 2, 2, 2]
    with pytest.raises(ValueError, match="unknown upscaling task type"):
        task_scale("8K")


def test_default_source_is_the_largest_clip(clips_dir):
    assert probe(default_source(clips_dir)).width == 1280


def test_head_reference_is_30fps_yuv420p_silent_h264_with_30_frame_gop(clips_dir, tmp_path):
    reference = build_reference(clips_dir / LOW_FPS_CLIP, tmp_path / "ref.mp4", start=1.0, seconds=2.0)
    facts = probe(reference)
    assert (facts.width, facts.height) == (480, 360)
    assert facts.fps == 30 and facts.frame_count == 60, "a 14.99 fps source is resampled to 30 fps"
    assert (facts.codec, facts.pix_fmt, facts.has_audio) == ("h264", "yuv420p", False)
    assert keyframe_indices(reference) == [0, 30], "-g 30 -keyint_min 30 -sc_threshold 0"


def test_era_a_reference_keeps_the_source_frame_rate(clips_dir, tmp_path):
    facts = probe(build_reference(clips_dir / LOW_FPS_CLIP, tmp_path / "ref.mp4", start=1.0, seconds=2.0,
                                  era="old"))
    assert abs(float(facts.fps) - 14.985) < 0.01
    assert facts.frame_count == 30


def test_reference_dimensions_are_cropped_to_multiples_of_8(clips_dir, tmp_path):
    facts = probe(build_reference(clips_dir / PORTRAIT_CLIP, tmp_path / "ref.mp4", start=0.0, seconds=0.5))
    assert (facts.width, facts.height) == (400, 720), "406 wide is cropped to 400"
    assert facts.frame_count == 15


@pytest.mark.parametrize(("task_type", "input_size"), [("SD24K", (64, 36)), ("HD24K", (128, 72))])
def test_upscaling_input_is_the_reference_divided_by_the_task_scale(clips_dir, tmp_path, task_type, input_size):
    [item] = build_upscaling_inputs(clips_dir / HD_CLIP, tmp_path, [task_type], seconds=0.5, reference_height=144,
                                    era="head", rng=random.Random(7))
    reference, payload = probe(item.reference), probe(item.payload)
    assert (reference.width, reference.height) == (256, 144)
    assert (payload.width, payload.height) == input_size
    assert payload.frame_count == reference.frame_count == 15
    assert payload.fps == 30 and payload.codec == "h264" and not payload.has_audio


def test_compression_input_is_the_reference_itself(clips_dir, tmp_path):
    items = build_compression_inputs(clips_dir / HD_CLIP, tmp_path, [(89, "av1", "CRF", 5.0), (93, "hevc", "VBR", 8.0)],
                                     seconds=0.5, reference_height=None, era="head", rng=random.Random(3))
    assert [item.payload for item in items] == [item.reference for item in items]
    assert [(item.vmaf_threshold, item.target_codec) for item in items] == [(89, "av1"), (93, "hevc")]
    facts = probe(items[0].reference)
    assert (facts.width, facts.height, facts.frame_count, facts.fps) == (1280, 720, 15, 30)


def test_head_compression_input_is_three_permuted_chunks_at_crf_18(clips_dir, tmp_path):
    [item] = build_compression_inputs(clips_dir / HD_CLIP, tmp_path, [(89, "av1", "CRF", 5.0)], seconds=1.0,
                                      reference_height=144, era="head", rng=random.Random(3))
    facts = probe(item.reference)
    assert (facts.width, facts.height, facts.fps, facts.frame_count) == (256, 144, 30, 30), "3 chunks of 10 frames"
    assert (facts.codec, facts.profile, facts.has_audio) == ("h264", "High", False), "-preset fast -crf 18"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compress-0-reference.mp4"], "chunk files are removed"


def test_era_a_compression_input_is_the_plain_ultrafast_trim(clips_dir, tmp_path):
    [item] = build_compression_inputs(clips_dir / HD_CLIP, tmp_path, [(90, "av1", "CRF", 10.0)], seconds=1.0,
                                      reference_height=144, era="old", rng=random.Random(3))
    facts = probe(item.reference)
    assert facts.profile == "Constrained Baseline", "libx264 ultrafast"
    assert abs(facts.frame_count - 30) <= 1, "Era A trims by time at the source's own frame rate"


def test_trims_longer_than_the_source_are_refused(clips_dir, tmp_path):
    with pytest.raises(ValueError, match="shorter than"):
        build_upscaling_inputs(clips_dir / PORTRAIT_CLIP, tmp_path, ["SD24K"], seconds=30, reference_height=144,
                               era="head", rng=random.Random(1))
