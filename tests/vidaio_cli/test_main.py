"""The `vidaio-mesh` entry point stays light: torch, bittensor and the services' cores load only in the
commands that use them, so `vidaio-mesh health` and `--help` answer in well under a second."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from vidaio_cli.main import app

HEAVY = ("torch", "bittensor", "matplotlib", "scenedetect", "upscaler_svc", "compressor_svc", "miner_gateway")


def test_loading_the_cli_imports_no_heavy_package():
    loaded = subprocess.run(
        [sys.executable, "-c", "import json, sys, vidaio_cli.main; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    )
    modules = json.loads(loaded.stdout)
    assert [name for name in HEAVY if name in modules] == []


def test_every_command_is_listed():
    listing = CliRunner().invoke(app, ["--help"])
    assert listing.exit_code == 0
    for command in ("up", "health", "upscale", "compress", "demo", "bench", "score"):
        assert command in listing.output
