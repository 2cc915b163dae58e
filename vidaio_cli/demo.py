"""`vidaio-mesh demo` (what `make demo` runs): one real validator round against the mesh, scored like the
subnet, so an operator sees what the subnet would pay before registering a hotkey.

Small defaults (5 + 5 one-second items at 256×144 reference size) finish in a few minutes on a 2-core CPU;
`--reference-height 2160 --seconds 5 --source <4K clip>` plays real sizes. Exit status: 0 when every item
passed every gate, 1 when the mesh did not answer (a synapse failed or an item came back without a URL),
2 when it answered but some item failed a gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mesh.codecs import TASK_SCALES
from vidaio_cli.inputs import (
    ERAS,
    build_compression_inputs,
    build_upscaling_inputs,
    default_source,
)
from vidaio_cli.scorecard import RoundReport, print_scorecard

if TYPE_CHECKING:  # bittensor (~1.5 s) loads only when a round is played, not for every vidaio-mesh command
    from vidaio_cli.mesh_stack import EmbeddedMesh, MeshHandle
    from vidaio_cli.validator import LocalValidator, RoundPlan

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_CLIPS = REPO_ROOT.parent / "shared" / "data" / "clips"  # the real development clips, if beside us
DEFAULT_TASK_TYPES = ("SD24K", "HD24K", "SD24K", "SD2HD", "SD24K")
THRESHOLDS = {"head": (85.0, 89.0, 93.0), "old": (85.0, 90.0, 95.0)}
CODECS = ("av1", "hevc")
CODEC_MODES = ("CRF", "VBR")
BITRATES = (5.0, 8.0, 10.0)
EXIT_NO_ANSWER = 1
EXIT_GATE_FAILED = 2


def clips_dir() -> Path:
    """VIDAIO_CLIPS_DIR, else ../shared/data/clips next to the repository."""
    return Path(os.environ.get("VIDAIO_CLIPS_DIR", SHARED_CLIPS))


def pick_source(source: Path | None, workdir: Path, console: Console) -> tuple[Path, str]:
    """The clip to cut inputs from, and where it came from: --source, else the largest clip in
    VIDAIO_CLIPS_DIR (when set) or in ../shared/data/clips, else a synthetic HD clip (vidaio_cli.synthetic)
    rendered into `workdir`, so the demo runs from a bare clone."""
    if source is not None:
        return source, "--source"
    env = os.environ.get("VIDAIO_CLIPS_DIR")
    directory, origin = (Path(env), "VIDAIO_CLIPS_DIR") if env else (SHARED_CLIPS, "../shared/data/clips")
    try:
        return default_source(directory), f"the largest clip in {origin} ({directory})"
    except OSError:  # missing, not a directory, or no clips in it
        pass
    from vidaio_cli.synthetic import DEMO_CLIP, make_clip

    with console.status(f"no clips in {directory}: rendering a synthetic clip"):
        clip = make_clip(DEMO_CLIP, workdir)
    return clip, f"synthetic, made by vidaio_cli.synthetic: no clips in {directory}"


def csv_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class RoundShape:
    """What one round asks for; compression settings are drawn per item like the validator's."""

    era: str
    task_types: list[str]
    compression_items: int
    thresholds: list[float]
    codecs: list[str]
    codec_modes: list[str]
    bitrates: list[float]
    seconds: float
    reference_height: int | None

    def compression_settings(self, rng: random.Random) -> list[tuple[float, str, str, float]]:
        return [(rng.choice(self.thresholds), rng.choice(self.codecs), rng.choice(self.codec_modes),
                 rng.choice(self.bitrates)) for _ in range(self.compression_items)]

    def build(self, source: Path, workdir: Path, rng: random.Random) -> RoundPlan:
        """Validator-style inputs for this shape, cut from random points of `source`."""
        from vidaio_cli.validator import RoundPlan

        upscaling = build_upscaling_inputs(source, workdir, self.task_types, seconds=self.seconds,
                                           reference_height=self.reference_height, era=self.era, rng=rng)
        compression = build_compression_inputs(source, workdir, self.compression_settings(rng),
                                               seconds=self.seconds, reference_height=self.reference_height,
                                               era=self.era, rng=rng)
        return RoundPlan(self.era, upscaling, compression)


def round_shape(era: str, upscaling_items: int, compression_items: int, task_types: str, thresholds: str,
                codecs: str, codec_modes: str, bitrates: str, seconds: float, reference_height: int) -> RoundShape:
    """Validate the shared round flags of `demo` and `bench`."""
    if era not in ERAS:
        raise typer.BadParameter(f"--era must be one of {', '.join(ERAS)}")
    types = csv_list(task_types) or list(DEFAULT_TASK_TYPES)
    unknown = [t for t in types if t not in TASK_SCALES]
    if unknown:
        raise typer.BadParameter(f"unknown task types {unknown}; use {', '.join(TASK_SCALES)}")
    bad_codecs = [c for c in csv_list(codecs) if c not in ("av1", "hevc", "h264", "vp9")]
    bad_modes = [m for m in csv_list(codec_modes) if m.upper() not in ("CRF", "VBR", "CBR")]
    if bad_codecs or bad_modes or not csv_list(codecs) or not csv_list(codec_modes):
        raise typer.BadParameter(f"codecs must be av1/hevc/h264/vp9 and modes CRF/VBR/CBR "
                                 f"(got {codecs!r}, {codec_modes!r})")
    if not 0 < seconds <= 60:
        raise typer.BadParameter("--seconds must be in (0, 60]")
    try:
        threshold_values = [float(t) for t in csv_list(thresholds)] or list(THRESHOLDS[era])
        bitrate_values = [float(b) for b in csv_list(bitrates)]
    except ValueError as exc:
        raise typer.BadParameter(f"thresholds and bitrates are numbers: {exc}") from None
    if any(not 0 < t <= 100 for t in threshold_values) or not bitrate_values or any(b <= 0 for b in bitrate_values):
        raise typer.BadParameter("thresholds must be in (0, 100] and bitrates > 0")
    return RoundShape(era=era, task_types=[types[i % len(types)] for i in range(upscaling_items)],
                      compression_items=compression_items, thresholds=threshold_values, codecs=csv_list(codecs),
                      codec_modes=[m.upper() for m in csv_list(codec_modes)], bitrates=bitrate_values,
                      seconds=seconds, reference_height=reference_height or None)


def stop_on_sigterm() -> None:
    """SIGTERM cleans up like Ctrl-C (the mesh's processes, temp files) instead of ending the process
    on the spot and leaving Valkey and SeaweedFS behind."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def round_progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                    transient=False)


@contextlib.contextmanager
def mesh_session(console: Console, *, use_running: bool, mesh_dir: Path | None, axon: str | None,
                 miner_hotkey: str | None, validator_wallet_dir: Path | None,
                 keep_data: bool) -> Iterator[tuple[MeshHandle, EmbeddedMesh | None]]:
    """A mesh to play against: a running one (from `up`'s data dir, or an axon address + hotkey), or a
    fresh embedded one that is stopped, with all its processes, when the block ends."""
    from vidaio_cli.identities import MinerTarget, validator_wallet
    from vidaio_cli.mesh_stack import EmbeddedMesh, MeshHandle, wait_for_axon

    if use_running:
        if mesh_dir is not None:
            handle = MeshHandle.from_state(mesh_dir)
        elif axon and miner_hotkey:
            host, _, port = axon.rpartition(":")
            wallet_dir = validator_wallet_dir or Path.home() / ".vidaio-mesh" / "wallets"
            handle = MeshHandle(MinerTarget(host, int(port), miner_hotkey), wallet_dir, wallet_dir)
            console.print(f"validator hotkey (allow it on the gateway): "
                          f"{validator_wallet(wallet_dir).hotkey.ss58_address}")
        else:
            raise typer.BadParameter("--use-running needs --mesh-dir (the `up --data-dir`) or --axon and "
                                     "--miner-hotkey")
        wait_for_axon(handle.miner)
        yield handle, None
        return
    mesh = EmbeddedMesh(keep_data=keep_data)
    started = time.monotonic()
    with console.status("starting the embedded mesh: Valkey, SeaweedFS, janitor, upscaler, compressor, gateway"):
        try:
            handle = mesh.start()
        except (RuntimeError, TimeoutError, OSError) as exc:
            mesh.stop()
            console.print(f"[red]the mesh did not start:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_NO_ANSWER) from None
        except BaseException:
            mesh.stop()
            raise
    console.print(f"mesh ready in {time.monotonic() - started:.0f} s (data and logs: {mesh.root})")
    try:
        yield handle, mesh
    finally:
        with console.status("stopping the mesh"):
            mesh.stop()


async def play_supervised(validator: LocalValidator, handle: MeshHandle, plan: RoundPlan,
                          mesh: EmbeddedMesh | None, console: Console) -> RoundReport:
    """Play the round while the supervisor restarts any service that crashes meanwhile."""
    async def tend() -> None:
        while mesh is not None:
            for event in mesh.tend():
                console.print(f"[yellow]{escape(event)}[/]")
            await asyncio.sleep(1.0)

    tender = asyncio.create_task(tend())
    try:
        return await validator.play(handle.miner, plan)
    finally:
        tender.cancel()


def exit_code(report: RoundReport) -> int:
    if not report.mesh_answered:
        return EXIT_NO_ANSWER
    return 0 if report.all_gates_passed else EXIT_GATE_FAILED


def demo(
    source: Annotated[Path | None, typer.Option(help="clip to cut inputs from (default: the largest clip in "
                                                     "$VIDAIO_CLIPS_DIR or ../shared/data/clips, else a "
                                                     "generated synthetic clip)")] = None,
    era: Annotated[str, typer.Option(help="head: 5-video synapses; old: Era A single-video synapses")] = "head",
    upscaling_items: Annotated[int, typer.Option(min=0, max=10, help="videos in the upscaling synapse")] = 5,
    compression_items: Annotated[int, typer.Option(min=0, max=10, help="videos in the compression synapse")] = 5,
    task_types: Annotated[str, typer.Option(help="upscaling task types, cycled over the items")] =
        ",".join(DEFAULT_TASK_TYPES),
    thresholds: Annotated[str, typer.Option(help="VMAF thresholds to draw from (default: the era's)")] = "",
    codecs: Annotated[str, typer.Option(help="compression target codecs to draw from")] = ",".join(CODECS),
    codec_modes: Annotated[str, typer.Option(help="compression codec modes to draw from")] = ",".join(CODEC_MODES),
    bitrates: Annotated[str, typer.Option(help="target bitrates (Mbit/s) to draw from")] =
        ",".join(f"{b:g}" for b in BITRATES),
    seconds: Annotated[float, typer.Option(help="length of each clip (the validator uses 1-5 s or 10 s)")] = 1.0,
    reference_height: Annotated[int, typer.Option(help="reference height in pixels (0: the source's own; "
                                                       "2160 for real 4K references)")] = 144,
    seed: Annotated[int, typer.Option(help="seed for trims, settings and VMAF frame sampling")] = 85,
    report: Annotated[Path, typer.Option(help="JSON report path")] = Path("demo-report.json"),
    use_running: Annotated[bool, typer.Option(help="play against a running mesh instead of starting one")] = False,
    mesh_dir: Annotated[Path | None, typer.Option(help="with --use-running: the data dir of `vidaio-mesh up`")] = None,
    axon: Annotated[str | None, typer.Option(help="with --use-running: the gateway axon HOST:PORT")] = None,
    miner_hotkey: Annotated[str | None, typer.Option(help="with --axon: the gateway's SS58 hotkey")] = None,
    validator_wallet_dir: Annotated[Path | None, typer.Option(help="with --axon: the local validator's wallet "
                                                                   "dir (default ~/.vidaio-mesh/wallets)")] = None,
    keep_data: Annotated[bool, typer.Option(help="keep the embedded mesh's data and logs")] = False,
) -> None:
    """Play one validator round against the mesh and print what the subnet would score."""
    from vidaio_cli.identities import validator_wallet
    from vidaio_cli.validator import LocalValidator

    stop_on_sigterm()
    console = Console()
    shape = round_shape(era, upscaling_items, compression_items, task_types, thresholds, codecs, codec_modes,
                        bitrates, seconds, reference_height)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="vidaio-demo-") as work:
        workdir = Path(work)
        clip, origin = pick_source(source, workdir, console)
        console.print(f"source: {escape(str(clip))} ({escape(origin)})")
        with console.status(f"building validator-style inputs from {clip.name}"):
            try:
                plan = shape.build(clip, workdir / "inputs", rng)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
        console.print(f"inputs: {len(plan.upscaling)} upscaling + {len(plan.compression)} compression clips of "
                      f"{seconds:g} s from {clip.name}")
        with mesh_session(console, use_running=use_running, mesh_dir=mesh_dir, axon=axon,
                          miner_hotkey=miner_hotkey, validator_wallet_dir=validator_wallet_dir,
                          keep_data=keep_data) as (handle, mesh), round_progress(console) as progress:
            validator = LocalValidator(validator_wallet(handle.validator_wallet_dir), workdir / "round", rng=rng,
                                       progress=progress)
            result = asyncio.run(play_supervised(validator, handle, plan, mesh, console))
    print_scorecard(console, result)
    result.write(report)
    console.print(f"report: {report}")
    raise typer.Exit(exit_code(result))


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)
