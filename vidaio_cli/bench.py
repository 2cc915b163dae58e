"""`vidaio-mesh bench`: the demo's validator round over every clip of a directory, repeated, with chosen
task types, thresholds, codecs and modes; writes a JSON file and a PNG chart (predicted score and seconds
per item) for operators comparing settings or machines.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from vidaio_cli.demo import (
    BITRATES,
    CODEC_MODES,
    CODECS,
    DEFAULT_TASK_TYPES,
    EXIT_GATE_FAILED,
    EXIT_NO_ANSWER,
    clips_dir,
    mesh_session,
    play_supervised,
    round_progress,
    round_shape,
    stop_on_sigterm,
)
from vidaio_cli.inputs import CLIP_SUFFIXES
from vidaio_cli.scorecard import summary_table

if TYPE_CHECKING:
    from vidaio_cli.scorecard import RoundReport


def write_chart(runs: list[dict], path: Path) -> Path:
    """Two panels over every item of every run: predicted score (hatched where PIE-APP was unavailable,
    red where a gate failed) and the validator's wait for the synapse plus the scoring time."""
    from matplotlib.figure import Figure

    items = [(run, item) for run in runs for item in run["report"]["items"]]
    labels = [f"{Path(run['clip']).stem[:14]} r{run['repetition']} {item['route'][5:9]}#{item['index']}"
              for run, item in items]
    figure = Figure(figsize=(max(8.0, 0.45 * len(items)), 7))
    score_axis, time_axis = figure.subplots(2, 1, sharex=True)
    positions = range(len(items))
    for x, (_, item) in zip(positions, items):
        score = item["predicted_score"]
        colour = "tab:green" if item["gates_passed"] else "tab:red"
        if score is None:
            score_axis.bar(x, 0.02, color="none", edgecolor=colour, hatch="//")
        else:
            score_axis.bar(x, score, color=colour)
    score_axis.set_ylabel("predicted score")
    score_axis.set_title("Predicted subnet score per item (hatched: PIE-APP unavailable; red: gate failed)")
    time_axis.bar(positions, [item["seconds"] or 0 for _, item in items], label="synapse round trip")
    time_axis.bar(positions, [item["scoring_seconds"] for _, item in items],
                  bottom=[item["seconds"] or 0 for _, item in items], label="scoring", alpha=0.6)
    time_axis.set_ylabel("seconds")
    time_axis.legend()
    time_axis.set_xticks(list(positions), labels, rotation=70, ha="right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def bench(
    clips: Annotated[Path | None, typer.Option(help="directory of source clips (default ../shared/data/clips)")] = None,
    repetitions: Annotated[int, typer.Option(min=1, max=100, help="rounds per clip")] = 1,
    era: Annotated[str, typer.Option(help="head or old (Era A)")] = "head",
    upscaling_items: Annotated[int, typer.Option(min=0, max=10)] = 2,
    compression_items: Annotated[int, typer.Option(min=0, max=10)] = 2,
    task_types: Annotated[str, typer.Option(help="upscaling task types, cycled")] = ",".join(DEFAULT_TASK_TYPES),
    thresholds: Annotated[str, typer.Option(help="VMAF thresholds to draw from")] = "",
    codecs: Annotated[str, typer.Option(help="codecs to draw from")] = ",".join(CODECS),
    codec_modes: Annotated[str, typer.Option(help="codec modes to draw from")] = ",".join(CODEC_MODES),
    bitrates: Annotated[str, typer.Option(help="bitrates (Mbit/s) to draw from")] = ",".join(
        f"{b:g}" for b in BITRATES),
    seconds: Annotated[float, typer.Option(help="length of each clip")] = 1.0,
    reference_height: Annotated[int, typer.Option(help="reference height (0: the source's own)")] = 144,
    seed: Annotated[int, typer.Option()] = 85,
    out: Annotated[Path, typer.Option(help="JSON results")] = Path("bench-out/bench.json"),
    chart: Annotated[Path, typer.Option(help="PNG chart")] = Path("bench-out/bench.png"),
    use_running: Annotated[bool, typer.Option(help="play against a running mesh")] = False,
    mesh_dir: Annotated[Path | None, typer.Option(help="with --use-running: `up`'s data dir")] = None,
    axon: Annotated[str | None, typer.Option(help="with --use-running: HOST:PORT")] = None,
    miner_hotkey: Annotated[str | None, typer.Option(help="with --axon: the gateway's hotkey")] = None,
    validator_wallet_dir: Annotated[Path | None, typer.Option(help="with --axon: validator wallet dir")] = None,
) -> None:
    """Play validator rounds over a directory of clips and chart the predicted scores and times."""
    from vidaio_cli.identities import validator_wallet
    from vidaio_cli.validator import LocalValidator

    stop_on_sigterm()
    console = Console()
    shape = round_shape(era, upscaling_items, compression_items, task_types, thresholds, codecs, codec_modes,
                        bitrates, seconds, reference_height)
    directory = clips or clips_dir()
    sources = sorted(p for p in directory.iterdir() if p.suffix.lower() in CLIP_SUFFIXES) if directory.is_dir() else []
    if not sources:
        raise typer.BadParameter(f"no clips in {directory}")
    rng = random.Random(seed)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vidaio-bench-") as work, \
            mesh_session(console, use_running=use_running, mesh_dir=mesh_dir, axon=axon, miner_hotkey=miner_hotkey,
                         validator_wallet_dir=validator_wallet_dir, keep_data=False) as (handle, mesh):
        for clip in sources:
            for repetition in range(repetitions):
                workdir = Path(work) / f"{clip.stem}-{repetition}"
                try:
                    plan = shape.build(clip, workdir / "inputs", rng)
                except ValueError as exc:
                    console.print(f"[yellow]skipping {clip.name}: {exc}[/]")
                    break
                console.rule(f"{clip.name} · repetition {repetition + 1}/{repetitions}")
                with round_progress(console) as progress:
                    validator = LocalValidator(validator_wallet(handle.validator_wallet_dir), workdir / "round",
                                               rng=rng, progress=progress)
                    report: RoundReport = asyncio.run(play_supervised(validator, handle, plan, mesh, console))
                console.print(summary_table(report))
                runs.append({"clip": str(clip), "repetition": repetition, "report": report.to_json()})
    out.parent.mkdir(parents=True, exist_ok=True)
    chart.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"shape": {"era": shape.era, "task_types": shape.task_types,
                                         "compression_items": shape.compression_items,
                                         "thresholds": shape.thresholds, "codecs": shape.codecs,
                                         "codec_modes": shape.codec_modes, "bitrates": shape.bitrates,
                                         "seconds": shape.seconds, "reference_height": shape.reference_height,
                                         "seed": seed},
                               "runs": runs}, indent=2) + "\n")
    write_chart(runs, chart)
    items = [item for run in runs for item in run["report"]["items"]]
    passed = sum(item["gates_passed"] for item in items)
    console.print(f"{passed}/{len(items)} items passed every gate over {len(runs)} rounds; {out}, {chart}")
    if not all(run["report"]["mesh_answered"] for run in runs):
        raise typer.Exit(EXIT_NO_ANSWER)
    raise typer.Exit(0 if passed == len(items) else EXIT_GATE_FAILED)


def register(app: typer.Typer) -> None:
    app.command(name="bench")(bench)
