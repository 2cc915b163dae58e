"""The cores are gRPC-free: every core module imports with grpc and google.protobuf made unimportable.

Each check runs in a fresh interpreter, so modules already imported by the test session prove nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Everything but the gRPC edge: the servicers and servers, the gRPC clients and the generated stubs.
GRPC_EDGE = {"servicer", "server", "__main__", "rpc", "janitor_client", "healthcheck", "telemetry"}
CORE_PACKAGES = ("mesh", "janitor_svc", "upscaler_svc", "compressor_svc")


def core_modules() -> list[str]:
    modules = []
    for package in CORE_PACKAGES:
        for path in sorted((REPO / package).glob("*.py")):
            if path.stem not in GRPC_EDGE and path.stem != "__init__":
                modules.append(f"{package}.{path.stem}")
    return modules


BLOCKER = textwrap.dedent("""
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "grpc" or name.startswith(("grpc.", "grpc_", "google.protobuf")) or name == "mesh.v1" \\
                    or name.startswith("mesh.v1."):
                raise ImportError(f"{name} is blocked: core modules must not need it")
            return None

    sys.meta_path.insert(0, Blocked())
""")


def test_the_list_covers_each_package():
    modules = core_modules()
    for package in CORE_PACKAGES:
        assert any(module.startswith(f"{package}.") for module in modules)
    for expected in ("mesh.jobs", "mesh.progress", "mesh.sources", "mesh.publish", "mesh.codecs", "mesh.errors",
                     "upscaler_svc.service", "compressor_svc.service", "compressor_svc.compressor"):
        assert expected in modules


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_modules_import_without_grpc_or_protobuf(package):
    modules = [module for module in core_modules() if module.startswith(f"{package}.")]
    script = BLOCKER + "\n".join(f"import {module}" for module in modules) + textwrap.dedent("""
        leaked = sorted(name for name in sys.modules if name == "grpc" or name.startswith(("grpc.", "google.protobuf")))
        assert not leaked, leaked
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
