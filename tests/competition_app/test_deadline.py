"""The answer always comes back before the batch timeout, even when the work cannot fit in it: the core
stops at its share of the time, an item that has no verified output by then is null, and the rest are
delivered. (The timeout is set short here; in the sandbox it comes from the validator's formula.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.competition_app.conftest import assert_valid, make_clip, media, running_service

pytestmark = pytest.mark.slow

TIMEOUT = 30


def test_a_batch_too_big_for_its_timeout_is_answered_in_time(tmp_path):
    with running_service(tmp_path, batch_timeout_seconds=str(TIMEOUT), margin_seconds="4",
                         margin_fraction="0") as service:
        inputs, evaluations = service.inputs / "inputs", service.outputs / "evaluations"
        for index in range(3):
            make_clip(inputs / f"long-{index}.mp4", seconds=4, size="1280x720", rate=30, noise=10)
        batch = [{"input_path": str(inputs / f"long-{index}.mp4"), "output_path": str(evaluations / f"{index}.mp4"),
                  "codec": "AV1", "codec_mode": "CRF", "target_bitrate": None, "vmaf_threshold": 93.0}
                 for index in range(3)]
        started = time.monotonic()
        response = service.compress({"items": batch})
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        results = response.json()["results"]
        assert [set(result) for result in results] == [{"output_path"}] * 3
        assert elapsed <= TIMEOUT, f"answered after {elapsed:.1f} s"
        delivered = {result["output_path"] for result in results} - {None}
        assert delivered <= {entry["output_path"] for entry in batch}
        # What was delivered is complete; nothing else was left under the output root.
        for path in delivered:
            assert media(Path(path))["codec"] == "av1"
        assert {str(path) for path in service.files_under_outputs()} == delivered


def test_when_the_core_runs_out_of_time_the_fallback_delivers(tmp_path):
    """Nearly all of the item's time kept for the fallback: the core cannot verify anything in the rest, and
    the fallback's output still passes the scorer's checks (audio included)."""
    with running_service(tmp_path, batch_timeout_seconds="40", margin_seconds="4", margin_fraction="0",
                         fallback_share="0.995") as service:
        source = make_clip(service.inputs / "inputs" / "clip.mp4", seconds=3, size="1280x720", rate=30)
        output = service.outputs / "evaluations" / "clip.mp4"
        response = service.compress({"items": [{"input_path": str(source), "output_path": str(output),
                                                "codec": "AV1", "vmaf_threshold": 85.0}]})
        assert response.status_code == 200
        assert response.json() == {"results": [{"output_path": str(output)}]}
        assert "no verified output in time, the fast encode runs" in service.log.read_text()
        assert_valid(source, output)


def test_an_input_too_long_for_a_search_gets_the_fast_encode_alone(tmp_path):
    """Inputs from `direct_min_seconds` on are timed first; when the fast encode alone needs more than
    `direct_share` of the time (always, at 0), the core is skipped and the fast encode's output is valid."""
    with running_service(tmp_path, direct_min_seconds="2", direct_share="0") as service:
        source = make_clip(service.inputs / "inputs" / "clip.mp4", seconds=3, size="320x240", noise=10)
        short = make_clip(service.inputs / "inputs" / "short.mp4", seconds=1, size="320x240", noise=10)
        batch = [{"input_path": str(path), "output_path": str(service.outputs / "evaluations" / path.name),
                  "codec": "AV1", "codec_mode": "VBR", "target_bitrate": 300_000, "vmaf_threshold": 89.0}
                 for path in (source, short)]
        response = service.compress({"items": batch})
        assert response.json() == {"results": [{"output_path": entry["output_path"]} for entry in batch]}
        log = service.log.read_text()
        assert "clip.mp4: the fast encode alone needs" in log and "short.mp4: the fast encode" not in log
        assert_valid(source, service.outputs / "evaluations" / "clip.mp4", target_bitrate=300_000)
        assert_valid(short, service.outputs / "evaluations" / "short.mp4", target_bitrate=300_000)
