"""A short real round: the embedded mesh (Valkey, SeaweedFS, janitor, upscaler, compressor, gateway in local
mode) against `vidaio-mesh demo` as a real process: Dendrite → Axon → services → S3 → presigned URLs →
download → the validator's gates. Tiny inputs (12 frames, 256×144 references) keep it under two minutes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidaio_cli.mesh_stack import EmbeddedMesh

ROOT = Path(__file__).resolve().parents[2]
VIDAIO_MESH = Path(sys.executable).parent / "vidaio-mesh"
REQUIRED_KEYS = {"route", "task", "gates_passed", "vmaf", "vmaf_neg", "predicted_score", "seconds"}
HD_CLIP = "synth_hd_1280x720_30fps.mp4"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def running_mesh(tmp_path_factory):
    """The mesh `demo` starts, started once for this module; afterwards no service process may survive."""
    mesh = EmbeddedMesh(tmp_path_factory.mktemp("mesh"), extra_env={"OTEL_SDK_DISABLED": "true"})
    with mesh as handle:
        pids = [child.process.pid for child in mesh.supervisor.children]
        yield mesh, handle
    assert not [pid for pid in pids if _alive(pid)], "a service outlived the mesh"


def run_demo(mesh_dir: Path, report: Path, source: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(VIDAIO_MESH), "demo", "--use-running", "--mesh-dir", str(mesh_dir), "--report",
                           str(report), "--source", str(source), "--seconds", "0.4", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400, check=False)


@pytest.mark.slow
def test_head_round_every_item_passes_the_validator_gates(running_mesh, tmp_path, clips_dir):
    mesh, _ = running_mesh
    report_path = tmp_path / "report.json"
    result = run_demo(mesh.root, report_path, clips_dir / HD_CLIP, "--upscaling-items", "2", "--compression-items",
                      "2", "--task-types", "SD24K,HD24K", "--codecs", "av1,hevc", "--codec-modes", "CRF,VBR")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:] + str(mesh.log_tails())
    report = json.loads(report_path.read_text())
    assert report["warrant_task"] in ("UPSCALING", "COMPRESSION") and report["content_length"] in (5, 10)
    items = report["items"]
    assert [item["route"] for item in items] == ["VideoUpscalingProtocol"] * 2 + ["VideoCompressionProtocol"] * 2
    for item in items:
        assert REQUIRED_KEYS <= item.keys()
        assert item["gates_passed"], item
        assert item["url"].startswith("http://127.0.0.1:") and item["seconds"] > 0
    assert all(item["vmaf"] >= 50 for item in items[:2])
    for item in items[2:]:
        assert item["vmaf_neg"] is not None and item["ratio"] > 1.25 and item["predicted_score"] > 0
    assert "4/4 items passed every validator gate" in result.stdout


@pytest.mark.slow
def test_era_a_round_with_single_video_synapses(running_mesh, tmp_path, clips_dir):
    mesh, _ = running_mesh
    report_path = tmp_path / "report.json"
    # T=90: the seed would draw Era A's T=95, which no file smaller than this tiny reference reaches, and the
    # compressor rightly answers "" for an output that would score zero.
    result = run_demo(mesh.root, report_path, clips_dir / HD_CLIP, "--era", "old", "--upscaling-items", "1",
                      "--compression-items", "1", "--task-types", "SD24K", "--thresholds", "90")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:] + str(mesh.log_tails())
    report = json.loads(report_path.read_text())
    assert report["era"] == "old" and len(report["items"]) == 2
    assert all(item["gates_passed"] for item in report["items"])
    assert {gate["name"] for gate in report["items"][0]["gates"]} >= {"resolution", "frame_count", "vmaf_floor"}


@pytest.mark.slow
def test_bench_writes_json_and_a_png_chart(running_mesh, tmp_path, clips_dir):
    mesh, _ = running_mesh
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "hd.mp4").symlink_to(clips_dir / HD_CLIP)
    out, chart = tmp_path / "bench.json", tmp_path / "bench.png"
    result = subprocess.run([str(VIDAIO_MESH), "bench", "--use-running", "--mesh-dir", str(mesh.root), "--clips",
                             str(clips), "--repetitions", "2", "--upscaling-items", "1", "--compression-items", "0",
                             "--task-types", "SD24K", "--seconds", "0.4",
                             "--out", str(out), "--chart", str(chart)], cwd=ROOT, capture_output=True, text=True,
                            timeout=400, check=False, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    runs = json.loads(out.read_text())["runs"]
    assert [run["repetition"] for run in runs] == [0, 1]
    assert all(item["gates_passed"] for run in runs for item in run["report"]["items"])
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
