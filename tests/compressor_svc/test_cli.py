"""`vidaio-mesh compress` runs the core in-process and prints the figures an operator needs."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mesh.media import probe
from tests.compressor_svc.test_pipeline import validator_style
from vidaio_cli.main import app


def test_compress_command_prints_vmaf_ratio_score_and_time(clips_dir: Path, tmp_path: Path):
    source = validator_style(clips_dir, tmp_path / "in.mp4", frames_each=20, size="192x108")
    output = tmp_path / "out" / "compressed.mp4"
    result = CliRunner().invoke(app, ["compress", str(source), "-o", str(output), "--vmaf-threshold", "85",
                                      "--codec", "hevc", "--preset", "veryfast", "--budget", "60"])
    assert result.exit_code == 0, result.output
    for label in ("VMAF (v0.6.1)", "VMAF-NEG", "compression ratio", "predicted subnet score", "time"):
        assert label in result.output
    facts = probe(output)
    assert facts.codec == "hevc" and facts.frame_count == probe(source).frame_count


def test_compress_command_rejects_bad_input(tmp_path: Path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"nope" * 100)
    result = CliRunner().invoke(app, ["compress", str(garbage), "-o", str(tmp_path / "o.mp4")])
    assert result.exit_code == 2 and "InvalidInput" in result.output
