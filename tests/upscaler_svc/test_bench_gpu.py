"""`scripts/bench_gpu.py --smoke`: the GPU benchmark's own code, run on the CPU, ready for a GPU run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# realesr-animevideov3 (SRVGGNetCompact, 64 features, 16 body convs, 3x3 kernels, x4 by pixel shuffle):
# multiply-adds per input pixel of its convolutions.
ANIMEVIDEOV3_MACS_PER_PIXEL = 9 * (3 * 64 + 16 * 64 * 64 + 64 * 3 * 16)


def test_smoke_run_times_every_row_and_counts_the_network_flops(tmp_path):
    report = tmp_path / "bench.json"
    command = [sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--smoke", "--models",
               "realesr-animevideov3", "--json", str(report)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    rows = {row["engine"]: row for row in json.loads(report.read_text())["rows"]}
    assert list(rows) == ["cpu", "cuda fp32", "cuda fp16", "ncnn"]
    for name in ("cpu", "cuda fp32", "cuda fp16"):
        assert "error" not in rows[name] and rows[name]["fps"] > 0, rows[name]
    # One 48x32 frame, reflect-padded by 10 px on each side, is one tile.
    assert rows["cuda fp32"]["gflop_per_frame"] * 1e9 == 2 * ANIMEVIDEOV3_MACS_PER_PIXEL * 68 * 52
    assert rows["cuda fp32"]["max_lsb"] == 0 and rows["cuda fp16"]["max_lsb"] <= 3
    assert "fps" in rows["ncnn"] or rows["ncnn"]["error"]
