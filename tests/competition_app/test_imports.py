"""Start-up is billed: the app imports no torch, openvino, grpc, protobuf, bittensor or fastapi, and the
module that serves /health does not even load the compressor core (that happens in the background)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys

    HEAVY = ("grpc", "google.protobuf", "torch", "openvino", "bittensor", "fastapi", "mesh.v1", "onnxruntime")

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == heavy or name.startswith(heavy + ".") for heavy in HEAVY):
                raise ImportError(f"{name} is blocked: the competition app must not need it")
            return None

    sys.meta_path.insert(0, Blocked())
""")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_the_app_module_loads_without_the_core():
    result = _run("""
        import competition_app.app
        assert callable(competition_app.app.app)
        loaded = sorted(name for name in ("av", "numpy", "scenedetect", "compressor_svc") if name in sys.modules)
        assert not loaded, loaded
    """)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_core_the_app_loads_needs_nothing_heavy():
    result = _run("""
        import competition_app.item
        assert "compressor_svc.compressor" in sys.modules
    """)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_blocker_would_catch_a_heavy_import():
    result = _run("import grpc")
    assert result.returncode != 0 and "blocked" in result.stderr
