"""The last-resort encode (used when the core has no verified output in time): AV1 with the source's frames,
and under a VBR item the encoder's own cap keeps the file within the scorer's, where the same encode
without it would not be."""

from __future__ import annotations

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
