"""`vidaio-mesh upscale`: the core pipeline in-process from the command line."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from mesh.media import probe
from tests.upscaler_svc.conftest import CLIP_29_97
from vidaio_cli import upscale


def _app() -> typer.Typer:
    app = typer.Typer()
    upscale.register(app)
    app.command("noop")(lambda: None)  # a second command keeps typer in multi-command mode
    return app


def test_upscale_command_writes_a_valid_output_and_prints_its_facts(tiny_clips, weight_cache, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("UPSCALER_CACHE_DIR", str(weight_cache.cache_dir))
    monkeypatch.setenv("UPSCALER_CPU_BACKEND", "torch")
    monkeypatch.setenv("UPSCALER_X265_PRESET", "ultrafast")
    source = tiny_clips(CLIP_29_97, frames=3, width=64)
    output = tmp_path / "out.mp4"
    result = CliRunner().invoke(_app(), ["upscale", str(source), "-o", str(output), "--task-type", "SD24K"])
    assert result.exit_code == 0, result.output
    facts = probe(output)
    assert (facts.width, facts.height, facts.frame_count, facts.codec) == (256, 192, 3, "hevc")
    assert "256x192" in result.output and "30000/1001" in result.output and "gates: all" in result.output


def test_upscale_command_reports_bad_input_with_its_status(tmp_path, weight_cache, monkeypatch):
    monkeypatch.setenv("UPSCALER_CACHE_DIR", str(weight_cache.cache_dir))
    monkeypatch.setenv("UPSCALER_CPU_BACKEND", "torch")
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    result = CliRunner().invoke(_app(), ["upscale", str(text), "-o", str(tmp_path / "o.mp4"), "--scale", "2"])
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT" in result.output
