"""`vidaio-mesh`: operator commands. Each command lives in its own module and registers itself here.

The modules import torch, bittensor and the services' cores inside the commands that need them, so that
`--help`, `health` and `up` start in under a second (tests/vidaio_cli/test_main.py holds them to it)."""

from __future__ import annotations

import typer

from vidaio_cli import bench, competition, compress, demo, infra, score, upscale

app = typer.Typer(help="vidaio-mesh: run, check and score a Vidaio (subnet 85) miner mesh.",
                  no_args_is_help=True, add_completion=False)

for module in (infra, upscale, compress, demo, bench, score, competition):
    module.register(app)
