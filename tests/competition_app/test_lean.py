"""The lean policy through the route service: every item still passes the scorer's checks (audio packets,
the VBR cap, format, ratio), and no whole-output VMAF pass runs."""

from __future__ import annotations

import pydantic
import pytest

from competition_app.settings import CompetitionSettings
from tests.competition_app.conftest import assert_valid, make_clip, running_service

pytestmark = pytest.mark.slow


def test_an_unknown_policy_stops_the_service_at_start():
    with pytest.raises(pydantic.ValidationError, match="policy"):
        CompetitionSettings(policy="fastest")


def test_a_lean_batch_passes_every_validity_check(tmp_path):
    with running_service(tmp_path, policy="lean") as service:
        inputs, evaluations = service.inputs / "inputs", service.outputs / "evaluations"
        make_clip(inputs / "tone.mp4", seconds=4, rate=30)
        make_clip(inputs / "grainy.mp4", seconds=4, rate=30, sar="4/3", noise=20, crf=16)
        target = 150_000
        batch = [{"input_path": str(inputs / "tone.mp4"), "output_path": str(evaluations / "crf.mp4"),
                  "codec": "AV1", "codec_mode": "CRF", "vmaf_threshold": 89.0},
                 {"input_path": str(inputs / "grainy.mp4"), "output_path": str(evaluations / "vbr.mp4"),
                  "codec": "AV1", "codec_mode": "VBR", "target_bitrate": target, "vmaf_threshold": 93.0}]
        response = service.compress({"items": batch})
        assert response.json() == {"results": [{"output_path": entry["output_path"]} for entry in batch]}
        assert_valid(inputs / "tone.mp4", evaluations / "crf.mp4")
        assert_valid(inputs / "grainy.mp4", evaluations / "vbr.mp4", target_bitrate=target)
        lines = service.log.read_text().splitlines()
        for name in ("crf.mp4", "vbr.mp4"):  # (a VBR output over the cap is searched again, lean too)
            done = [line for line in lines if f"{name}: libsvtav1" in line]
            assert done and all("lean: not measured" in line for line in done), lines
