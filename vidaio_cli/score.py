"""`vidaio-mesh score REFERENCE DISTORTED --task upscale|compress`: one pair, the subnet's rules.

Works on any miner's output. For upscaling, the miner's input (for the W×H = input × scale and file-size
gates) is `--input`, or is rebuilt from the reference the way the validator builds it.
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mesh.codecs import TASK_SCALES
from vidaio_cli.inputs import ERAS, build_upscaling_input, task_scale
from vidaio_cli.judging import judge_compression, judge_upscaling
from vidaio_cli.scorecard import ItemResult, item_table


class Task(str, enum.Enum):
    upscale = "upscale"
    compress = "compress"


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file")
    return path


def score(
    reference: Annotated[Path, typer.Argument(help="the validator's reference (full-resolution trim)",
                                              callback=_existing)],
    distorted: Annotated[Path, typer.Argument(help="the miner's output", callback=_existing)],
    task: Annotated[Task, typer.Option(help="which subnet task the output answers")],
    task_type: Annotated[str, typer.Option(help=f"upscaling task type: {', '.join(TASK_SCALES)}")] = "SD24K",
    input_video: Annotated[Path | None, typer.Option("--input", help="the miner's upscaling input "
                                                     "(default: rebuilt from REFERENCE)")] = None,
    content_length: Annotated[int, typer.Option(help="requested content length L (5 or 10) for S_L")] = 5,
    threshold: Annotated[float, typer.Option(help="compression VMAF threshold T")] = 89.0,
    codec: Annotated[str, typer.Option(help="compression target codec (av1, hevc)")] = "av1",
    codec_mode: Annotated[str, typer.Option(help="CRF, VBR or CBR")] = "CRF",
    bitrate: Annotated[float, typer.Option(help="target bitrate, Mbit/s (VBR/CBR cap = 1.1 ×)")] = 10.0,
    era: Annotated[str, typer.Option(help="scoring rules: head or old (Era A)")] = "head",
    seed: Annotated[int | None, typer.Option(help="seed for the validator's random frame sampling")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the result as JSON")] = None,
) -> None:
    """Score one (reference, output) pair exactly as the subnet's validator would."""
    if era not in ERAS:
        raise typer.BadParameter(f"--era must be one of {', '.join(ERAS)}")
    console = Console()
    rng = random.Random(seed)
    started = time.monotonic()
    if task is Task.upscale:
        try:
            scale = task_scale(task_type)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        with tempfile.TemporaryDirectory(prefix="vidaio-score-") as work:
            payload = input_video or build_upscaling_input(reference, Path(work) / "input.mp4", scale=scale)
            verdict = asyncio.run(judge_upscaling(reference, payload, distorted, task_scale=scale,
                                                  content_length=content_length, era=era, rng=rng))
        route, label = "VideoUpscalingProtocol", f"{task_type} (×{scale})"
    else:
        verdict = asyncio.run(judge_compression(reference, distorted, vmaf_threshold=threshold, target_codec=codec,
                                                codec_mode=codec_mode, target_bitrate=bitrate, era=era, rng=rng))
        route, label = "VideoCompressionProtocol", f"{codec} {codec_mode} T={threshold:g}"
    result = ItemResult(route, label, 0, None, url=str(distorted), gates=verdict.gates, vmaf=verdict.vmaf,
                        vmaf_neg=verdict.vmaf_neg, ratio=verdict.ratio, predicted_score=verdict.score,
                        scoring_seconds=time.monotonic() - started, details=verdict.details, notes=verdict.notes)
    console.print(item_table(result))
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    raise typer.Exit(0 if result.gates_passed else 2)


def register(app: typer.Typer) -> None:
    app.command(name="score")(score)
