"""`vidaio-mesh score` judges one pair with the subnet's rules and exits 0 only when every gate passed."""

from __future__ import annotations

import json
import random

from typer.testing import CliRunner

from mesh.ffmpeg import run_ffmpeg_sync
from vidaio_cli.inputs import build_reference
from vidaio_cli.main import app

HD_CLIP = "synth_hd_1280x720_30fps.mp4"


def test_score_compress_and_upscale_pairs(clips_dir, tmp_path):
    reference = build_reference(clips_dir / HD_CLIP, tmp_path / "ref.mp4", start=random.Random(2).uniform(0, 8),
                                seconds=0.4, height=144)
    compressed = tmp_path / "c.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-i", str(reference), "-vf", "setsar=1", "-c:v", "libx265",
                     "-crf", "20", "-pix_fmt", "yuv420p", "-tag:v", "hvc1", str(compressed)])
    report = tmp_path / "score.json"
    runner = CliRunner()
    result = runner.invoke(app, ["score", str(reference), str(compressed), "--task", "compress", "--codec", "hevc",
                                 "--threshold", "85", "--json", str(report)])
    assert result.exit_code == 0, result.output
    scored = json.loads(report.read_text())
    assert scored["gates_passed"] and scored["route"] == "VideoCompressionProtocol"
    assert scored["vmaf_neg"] > 80 and scored["predicted_score"] > 0

    result = runner.invoke(app, ["score", str(reference), str(compressed), "--task", "upscale", "--task-type", "SD24K",
                                 "--json", str(report)])
    assert result.exit_code == 0, "HEVC at the reference size is a valid x4 upscale of the rebuilt input"

    result = runner.invoke(app, ["score", str(reference), str(reference), "--task", "upscale", "--task-type", "SD24K",
                                 "--json", str(report)])
    assert result.exit_code == 2, result.output
    scored = json.loads(report.read_text())
    assert scored["route"] == "VideoUpscalingProtocol" and not scored["gates_passed"]
    assert [gate["name"] for gate in scored["gates"] if not gate["passed"]] == ["codec", "sar"]
    assert scored["predicted_score"] == 0.0
