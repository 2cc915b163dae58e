"""`vidaio-mesh`: operator commands. Each command lives in its own module and registers itself here."""

from __future__ import annotations

import typer

from vidaio_cli import bench, compress, demo, infra, score, upscale

app = typer.Typer(help="vidaio-mesh: run, check and score a Vidaio (subnet 85) miner mesh.",
                  no_args_is_help=True, add_completion=False)

for module in (infra, upscale, compress, demo, bench, score):
    module.register(app)
