"""scripts/bench_round.py's compression input: HEAD's permuted clip from three different sources (spec §4.1),
30 fps yuv420p at one 16:9 size, with the exact frame count; and the script's argument parsing."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from mesh.media import probe
from vidaio_cli.inputs import build_multi_source_reference, frame_size
from vidaio_cli.synthetic import ClipSpec, make_clips

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 1.5


def frames_rgb(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24").astype(np.float32) for frame in container.decode(video=0)])


def test_multi_source_reference_permutes_chunks_of_three_sources(tmp_path):
    specs = [ClipSpec(f"source{i}.mp4", 128, 72, "30", SECONDS, (scene,), seed=seed)
             for i, (scene, seed) in enumerate((("landscape", 1), ("clouds", 2), ("city", 3)))]
    sources = list(make_clips(tmp_path / "clips", specs, workers=1).values())
    reference = build_multi_source_reference(sources, tmp_path / "ref.mp4", seconds=SECONDS, height=72,
                                             rng=random.Random(5))
    facts = probe(reference)
    assert frame_size(72) == (128, 72) and (facts.width, facts.height) == (128, 72)
    assert facts.fps == 30 and facts.pix_fmt == "yuv420p" and not facts.has_audio
    assert abs(facts.frame_count - SECONDS * 30) <= 1
    assert not list(tmp_path.glob("ref-chunk*")), "the chunks are removed"
    # Each output frame comes from the source whose nearest frame it resembles most; the runs of sources
    # must read A B C A B C (A_head B_tail C_head A_tail B_head C_tail).
    source_frames = [frames_rgb(source) for source in sources]
    labels = []
    for frame in frames_rgb(reference):
        distances = [np.min(np.mean((frames - frame) ** 2, axis=(1, 2, 3))) for frames in source_frames]
        labels.append(int(np.argmin(distances)))
    runs = [label for i, label in enumerate(labels) if i == 0 or label != labels[i - 1]]
    assert runs == [0, 1, 2, 0, 1, 2], labels


def test_bench_round_help_runs():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_round.py"), "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for flag in ("--task", "--items", "--timeout", "--seconds", "--height", "--clips-dir", "--seed", "--out",
                 "--inputs-dir"):
        assert flag in result.stdout
