"""`vidaio-mesh compress`: the compressor's core in-process (no gRPC, no storage), with live progress."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mesh.config import load_settings
from mesh.errors import MeshError
from mesh.sources import SourcePolicy, fetch

if TYPE_CHECKING:  # the compressor's core (PySceneDetect, OpenCV) loads only for `compress` itself
    from compressor_svc.config import CompressorSettings
    from compressor_svc.job import CompressJob, CompressOptions, CompressOutcome
    from mesh.progress import Progress as CoreProgress

console = Console()


def _summary(outcome: CompressOutcome, seconds: float) -> Table:
    table = Table(title=f"{outcome.encoder} preset {outcome.preset}, {outcome.scene_count} scene(s), "
                        f"{outcome.probes} probe(s)")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("VMAF (v0.6.1)", f"{outcome.vmaf:.3f}")
    table.add_row("VMAF-NEG", f"{outcome.vmaf_neg:.3f}")
    table.add_row("compression ratio", f"{outcome.ratio:.2f}x ({outcome.source.size_bytes:,} -> "
                                       f"{outcome.media.size_bytes:,} bytes)")
    table.add_row("predicted subnet score", f"{outcome.predicted_score:.4f}")
    table.add_row("meets threshold", "yes" if outcome.meets_threshold else "NO")
    table.add_row("time", f"{seconds:.1f} s")
    for gate in outcome.gates:
        if not gate.passed:
            table.add_row(f"gate {gate.name}", f"FAILED: {gate.detail}")
    return table


async def _run(source: str, output: Path, job: CompressJob, options: CompressOptions, budget: float,
               settings: CompressorSettings) -> CompressOutcome:
    from compressor_svc.compressor import compress

    columns = (TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[note]}"), TimeElapsedColumn())
    with tempfile.TemporaryDirectory(prefix="vidaio-compress-") as work, \
            Progress(*columns, console=console) as bar:
        task = bar.add_task("start", total=None, note="")

        def show(event: CoreProgress) -> None:
            bar.update(task, description=event.stage, completed=event.done, total=event.total or None,
                       note=event.message[:90])

        path = Path(source)
        if source.startswith(("http://", "https://")):
            bar.update(task, description="fetch")
            path = await fetch(source, Path(work) / "source.mp4", max_bytes=settings.max_source_bytes,
                               timeout=settings.fetch_timeout_seconds,
                               policy=SourcePolicy(allow_loopback=True))
        outcome = await compress(path, Path(work) / "job", job, options, budget_seconds=budget,
                                 on_progress=show)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(outcome.output, output)
        return outcome


def compress_command(
    source: Annotated[str, typer.Argument(help="video file or http(s) URL")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output .mp4")],
    vmaf_threshold: Annotated[float, typer.Option("--vmaf-threshold",
                                                  help="VMAF-NEG target (85, 89, 93)")] = 89.0,
    codec: Annotated[str, typer.Option(help="av1, hevc, h264 or vp9")] = "av1",
    mode: Annotated[str, typer.Option(help="CRF, VBR or CBR")] = "CRF",
    bitrate_mbps: Annotated[float, typer.Option("--bitrate-mbps", help="target bitrate for VBR/CBR")] = 0.0,
    budget: Annotated[float, typer.Option(help="seconds the job may take")] = 600.0,
    preset: Annotated[str | None, typer.Option(help="force an encoder preset (default: planned from the "
                                                    "budget)")] = None,
) -> None:
    """Compress a video to the smallest file whose VMAF-NEG meets the threshold, as the service does."""
    from compressor_svc.config import CompressorSettings
    from compressor_svc.job import CompressJob

    settings = load_settings(CompressorSettings)
    options = settings.compress_options(preset)
    job = CompressJob(vmaf_threshold, codec, mode, bitrate_mbps)
    started = time.monotonic()
    try:
        outcome = asyncio.run(_run(source, output, job, options, budget, settings))
    except MeshError as exc:
        console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(_summary(outcome, time.monotonic() - started))
    if outcome.note:
        console.print(f"note: {outcome.note}")
    console.print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("compress")(compress_command)
