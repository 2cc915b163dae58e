"""POST /compress end to end under uvicorn: good batches produce outputs that pass the scorer's validity
checks (spec §5.1: audio packets, VBR cap, AV1/MP4, dimensions, frames, duration, SAR, ratio); a bad item
is null while the others succeed; every refused path form is null with nothing written; the answer is
always HTTP 200 with exactly {"results": [{"output_path": ...}]} in request order."""

from __future__ import annotations

import httpx
import pytest

from tests.competition_app.conftest import assert_valid, make_clip, media

pytestmark = pytest.mark.slow


def assert_shape(response: httpx.Response, expected: list[str | None]) -> None:
    assert response.status_code == 200
    assert response.json() == {"results": [{"output_path": path} for path in expected]}


def item(service, name: str, source: str, **fields) -> dict:
    return {"evaluation_id": name, "input_path": str(service.inputs / "inputs" / source),
            "output_path": str(service.outputs / "evaluations" / f"{name}.mp4"), "codec": "AV1",
            "codec_mode": "CRF", "target_bitrate": None, "vmaf_threshold": 89.0, **fields}


def test_health_says_ok_and_local_io(service):
    response = httpx.get(f"{service.url}/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["competition_local_io"] == {"remote_io_disabled": True}


def test_a_good_batch_passes_every_validity_check(service):
    inputs = service.inputs / "inputs"
    evaluations = service.outputs / "evaluations"
    make_clip(inputs / "tone.mp4", seconds=2)
    make_clip(inputs / "grainy-anamorphic.mp4", seconds=2, sar="4/3", noise=20, crf=16)
    make_clip(inputs / "warmup.mp4", seconds=2, size="320x180", audio=False)
    target = 150_000  # under what VMAF-NEG 93 costs on the grainy clip: the cap binds
    warmup = {"input_path": str(inputs / "warmup.mp4"),  # the SDK warm-up's shape: no mode, no bitrate
              "output_path": str(evaluations / "warmup.mp4"), "codec": "AV1", "vmaf_threshold": 90.0}
    batch = [item(service, "input-00001-crf-vmaf89", "tone.mp4"),
             item(service, "input-00002-vbr-vmaf93-150k", "grainy-anamorphic.mp4", codec_mode="VBR",
                  target_bitrate=target, vmaf_threshold=93.0),
             item(service, "input-00002-crf-vmaf93", "grainy-anamorphic.mp4", vmaf_threshold=93.0),
             warmup]
    response = service.compress({"competition_id": "compression-test", "hotkey": "5Fake", "batch_id": "batch-1",
                                 "items": batch})
    assert_shape(response, [entry["output_path"] for entry in batch])
    assert_valid(inputs / "tone.mp4", evaluations / "input-00001-crf-vmaf89.mp4")
    assert_valid(inputs / "grainy-anamorphic.mp4", evaluations / "input-00002-vbr-vmaf93-150k.mp4",
                 target_bitrate=target)
    assert_valid(inputs / "grainy-anamorphic.mp4", evaluations / "input-00002-crf-vmaf93.mp4")
    assert_valid(inputs / "warmup.mp4", evaluations / "warmup.mp4")
    # Unconstrained, the same clip at the same threshold needs more than the cap allows.
    assert media(evaluations / "input-00002-crf-vmaf93.mp4")["bit_rate"] > int(target * 1.10)
    assert media(evaluations / "input-00002-vbr-vmaf93-150k.mp4")["sar"] == "4:3"
    # Only the assigned outputs appear under the output root; the inputs are untouched.
    assert service.files_under_outputs() == {evaluations / f"{entry['output_path'].rsplit('/', 1)[1]}"
                                             for entry in batch}
    assert sorted(path.name for path in inputs.iterdir()) == ["grainy-anamorphic.mp4", "tone.mp4", "warmup.mp4"]


def test_one_bad_item_is_null_and_the_four_good_ones_succeed(service):
    inputs = service.inputs / "inputs"
    for index in range(4):
        make_clip(inputs / f"small-{index}.mp4", seconds=1, size="160x120", audio=index % 2 == 0)
    batch = [item(service, f"five-{index}", f"small-{index}.mp4", vmaf_threshold=85.0) for index in range(4)]
    batch.insert(2, item(service, "five-bad", "missing.mp4"))
    response = service.compress({"items": batch})
    expected = [entry["output_path"] for entry in batch]
    expected[2] = None
    assert_shape(response, expected)
    for index in range(4):
        assert_valid(inputs / f"small-{index}.mp4", service.outputs / "evaluations" / f"five-{index}.mp4")
    assert not (service.outputs / "evaluations" / "five-bad.mp4").exists()
