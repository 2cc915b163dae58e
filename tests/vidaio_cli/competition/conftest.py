"""Fixtures for the competition export and check tests (see support.py for what is fabricated and why)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.vidaio_cli.competition.support import FABRICATED_SDK, STANDIN_APP, standin_spec
from vidaio_cli import competition_rules
from vidaio_cli.competition_export import export_solution


@pytest.fixture()
def subnet_checkout(tmp_path) -> Path:
    """A fake subnet checkout: the two SDK paths hold fabricated files whose digests no spec lists."""
    root = tmp_path / "vidaio-subnet"
    for relative, content in FABRICATED_SDK.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return root


@pytest.fixture()
def accept_fabricated_sdk(monkeypatch):
    """Accept the fabricated SDK files' digests (monkeypatched: the real files' text is not available here)."""
    table = {relative: frozenset({hashlib.sha256(content).hexdigest()})
             for relative, content in FABRICATED_SDK.items()}
    monkeypatch.setattr(competition_rules, "ACCEPTED_SDK_DIGESTS", table)


@pytest.fixture()
def standin_sources(tmp_path) -> Path:
    """A source root holding only the stand-in `competition_app` package."""
    root = tmp_path / "standin-src"
    (root / "competition_app").mkdir(parents=True)
    (root / "competition_app" / "__init__.py").write_text('"""Stand-in route service (tests only)."""\n')
    (root / "competition_app" / "app.py").write_text(STANDIN_APP)
    return root


@pytest.fixture()
def exported(tmp_path, subnet_checkout, accept_fabricated_sdk, standin_sources) -> Path:
    out = tmp_path / "solution"
    export_solution(subnet_checkout, out, gpu="L4", cpus=8, spec=standin_spec(standin_sources))
    return out
