"""The last-resort encode (used when the core has no verified output in time): AV1 with the source's frames,
and under a VBR item the encoder's own cap keeps the file within the scorer's, where the same encode
without it would not be. A long input is encoded in chunks side by side and still has every frame."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from competition_app import fallback
from competition_app.contract import Item
from mesh.media import probe
from tests.competition_app.conftest import make_clip, media

pytestmark = pytest.mark.slow

TARGET = 200_000


async def test_the_fallback_encode_is_av1_and_respects_the_cap(tmp_path):
    source = make_clip(tmp_path / "grainy.mp4", seconds=2, noise=20, crf=16)
    src = media(source)
    results = {}
    for mode, target in (("CRF", None), ("VBR", TARGET)):
        item = Item(input_path=str(source), output_path="/o/x.mp4", codec_mode=mode, target_bitrate=target,
                    vmaf_threshold=93.0)
        out = await fallback.encode(probe(source), item, tmp_path / f"{mode}.mp4", threads=2,
                                    allow_hardware=False, timeout=120)
        results[mode] = got = media(out)
        assert got["codec"] == "av1" and got["frames"] == src["frames"] and got["size"] < src["size"]
        assert got["audio_streams"] == 0  # the audio is muxed in afterwards, from the source
    assert 0 < results["VBR"]["bit_rate"] <= int(TARGET * 1.10) < results["CRF"]["bit_rate"]


def test_a_long_constant_rate_input_is_cut_into_parts_of_every_frame(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=1)
    facts = dataclasses.replace(probe(clip), duration=3600.0, fps=Fraction(30), frame_count=108_000)
    parts = fallback.chunks(facts, threads=16, hardware=False)
    assert len(parts) == fallback.MAX_CHUNKS and sum(count for _, count in parts) == 108_000
    assert all(first == previous + count for (previous, count), (first, _) in zip(parts, parts[1:]))
    assert len(fallback.chunks(facts, threads=16, hardware=True)) == fallback.MAX_NVENC_CHUNKS
    assert len(fallback.chunks(dataclasses.replace(facts, duration=59.0, frame_count=1770), 16, False)) == 1
    assert len(fallback.chunks(dataclasses.replace(facts, frame_count=90_000), 16, False)) == 1, "variable rate"


async def test_a_long_input_encoded_side_by_side_keeps_every_frame(tmp_path):
    source = make_clip(tmp_path / "long.mp4", seconds=62, size="160x90", rate=24)
    facts = probe(source)
    assert len(fallback.chunks(facts, threads=2, hardware=False)) == 2
    item = Item(input_path=str(source), output_path="/o/x.mp4", vmaf_threshold=89.0)
    out = await fallback.encode(facts, item, tmp_path / "out.mp4", threads=2, allow_hardware=False, timeout=300)
    got, src = media(out), media(source)
    assert got["codec"] == "av1" and got["frames"] == src["frames"]
    assert abs(probe(out).duration - facts.duration) <= 0.1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["long.mp4", "out.mp4"], "parts removed once joined"
