"""`vidaio-mesh upscale`: the upscaler's core pipeline in-process (no gRPC, no storage), with progress."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mesh.codecs import resolve_scale
from mesh.config import load_settings
from mesh.errors import MeshError
from mesh.sources import SourcePolicy, fetch

if TYPE_CHECKING:  # the upscaler's core imports torch (~2 s): only `upscale` itself loads it
    from mesh.progress import Progress as PipelineProgress
    from upscaler_svc.config import UpscalerSettings
    from upscaler_svc.pipeline import UpscaleOutcome

console = Console()


def _facts_table(outcome: UpscaleOutcome) -> Table:
    table = Table(title=f"x{outcome.scale} with {outcome.engine}, encoded by {outcome.encoder}")
    table.add_column("")
    table.add_column("source")
    table.add_column("output")

    def row(name: str, pick) -> None:
        table.add_row(name, str(pick(outcome.source)), str(pick(outcome.output)))

    row("size", lambda f: f"{f.width}x{f.height}")
    row("fps", lambda f: f"{f.fps} ({float(f.fps):.3f})")
    row("frames", lambda f: f.frame_count)
    row("codec", lambda f: f"{f.codec} {f.profile} {f.pix_fmt}")
    row("colour", lambda f: "/".join(v or "-" for v in (f.color_space, f.color_transfer, f.color_primaries)))
    row("SAR", lambda f: f.sample_aspect_ratio or "-")
    row("bytes", lambda f: f"{f.size_bytes:,}")
    return table


async def _run(source: str, output: Path, scale: int, codec: str,
               settings: UpscalerSettings) -> UpscaleOutcome:
    from upscaler_svc.engine_registry import create_engine
    from upscaler_svc.pipeline import UpscalePipeline
    from upscaler_svc.weights import WeightCache

    # SIGTERM stops the job like Ctrl-C does: threads stopped, ffmpeg killed, no output written.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("load", total=None, rate="")
        engine = await asyncio.to_thread(
            lambda: create_engine(settings.engine, WeightCache(settings.cache_dir).load(settings.model),
                                  settings.engine_options()))
        await asyncio.to_thread(engine.load)

        shown = {"stage": "load", "task": task}

        def show(progress: PipelineProgress) -> None:
            if progress.stage != shown["stage"]:  # one bar per stage: stages without a total spin
                bar.remove_task(shown["task"])
                shown.update(stage=progress.stage,
                             task=bar.add_task(progress.stage, total=progress.total or None, rate=""))
            rate = f"{progress.rate:.2f} {progress.unit}/s" if progress.rate else ""
            bar.update(shown["task"], completed=progress.done, rate=rate)

        with tempfile.TemporaryDirectory(prefix="vidaio-upscale-") as work:
            path = Path(source)
            if source.startswith(("http://", "https://")):
                bar.update(task, description="fetch")
                path = await fetch(source, Path(work) / "source.mp4", max_bytes=settings.max_source_bytes,
                                   timeout=settings.fetch_timeout_seconds,
                                   policy=SourcePolicy(allow_loopback=True))
            pipeline = UpscalePipeline(engine, encoder_settings=settings.encoder_settings(),
                                       limits=settings.limits())
            try:
                return await pipeline.run(path, output, scale=scale, codec=codec, on_progress=show)
            finally:
                engine.close()


def upscale(
    source: Annotated[str, typer.Argument(metavar="INPUT", help="video file or http(s) URL")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output .mp4")],
    task_type: Annotated[str | None, typer.Option("--task-type", help="SD2HD, HD24K, SD24K or 4K28K")] = None,
    scale: Annotated[int | None, typer.Option("--scale", help="2 or 4 (instead of a task type)")] = None,
    model: Annotated[str | None, typer.Option(help="model name or .pth/.safetensors path")] = None,
    codec: Annotated[str, typer.Option(help="hevc or av1")] = "hevc",
    engine: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    downscale: Annotated[str | None, typer.Option(help="x4->x2 filter: antialias, video2x-parity")] = None,
) -> None:
    """Upscale a video exactly as the upscaler service would, and print the output's facts."""
    from upscaler_svc.config import UpscalerSettings

    overrides = {key: value for key, value in (("model", model), ("engine", engine), ("downscale", downscale))
                 if value is not None}
    settings = load_settings(UpscalerSettings, **overrides)
    started = time.monotonic()
    try:
        factor = resolve_scale(task_type, scale)
        outcome = asyncio.run(_run(source, output, factor, codec.lower(), settings))
    except MeshError as exc:
        console.print(f"[red]{exc.status}[/red]: {exc}")
        raise typer.Exit(1) from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        console.print("[yellow]stopped[/yellow]: nothing was written")
        raise typer.Exit(130) from None
    console.print(_facts_table(outcome))
    upscale_seconds = max(outcome.timings.get("upscale", 0.0), 1e-9)
    console.print(f"gates: all {len(outcome.gates)} passed; "
                  f"{outcome.output.frame_count / upscale_seconds:.2f} frames/s upscaling; "
                  f"{time.monotonic() - started:.1f} s in all -> {output}")


def register(app: typer.Typer) -> None:
    app.command("upscale")(upscale)

