"""The checked-in stubs match the contracts, and the contracts pass buf lint."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_generated_stubs_match_protos(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)], check=True)
    fresh = tmp_path / "mesh" / "v1"
    committed = REPO_ROOT / "mesh" / "v1"
    generated = sorted(p.name for p in fresh.iterdir() if "_pb2" in p.name)
    assert generated, "protoc generated nothing"
    assert sorted(p.name for p in committed.iterdir() if "_pb2" in p.name) == generated
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, generated, shallow=False)
    assert not mismatch and not errors, f"stubs drifted from proto/; run `make proto`: {mismatch + errors}"


def test_buf_lint_passes() -> None:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent))
    assert buf, "buf (PyPI buf-bin) is a dev dependency"
    result = subprocess.run([buf, "lint"], cwd=REPO_ROOT / "proto", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
