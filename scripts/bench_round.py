"""Benchmark one HEAD validator round through the real gateway, at scaled real sizes.

Plays exactly the subnet's HEAD round against the whole mesh started in-process, as `vidaio-mesh demo`
does (embedded Valkey + SeaweedFS + janitor + upscaler + compressor + gateway in local mode): a real
bittensor Dendrite signed by the local validator's wallet sends TaskWarrant, LengthCheck and then ONE
synapse carrying every item, waits up to the synapse timeout, downloads what comes back and scores each
item by the subnet's rules with the project's judging code (vidaio_cli.judging: the validator's gates,
compression VMAF-NEG over every frame and the HEAD compression score; upscaling VMAF and, when PIE-APP
can run, S_F).

Compression (default): one VideoCompressionProtocol synapse of --items videos, timeout 180 s. Each video is
a HEAD "permuted" clip (spec §4.1) made from three DIFFERENT sources: one --seconds/3 chunk from each
(a source shorter than that is looped), scaled and cropped to the 16:9 size of --height, each split at a
random point in 10-70 %, joined A_head B_tail C_head A_tail B_head C_tail, re-encoded libx264 -preset
fast -crf 18, 30 fps, yuv420p, silent. Settings are HEAD's mix, cycled over the items:
  (85, av1, CRF) (89, hevc, CRF) (93, av1, VBR 5 Mbps) (89, av1, VBR 8 Mbps) (85, hevc, VBR 10 Mbps).

Upscaling (--task upscaling): one VideoUpscalingProtocol synapse of --items videos, timeout 135 s, task
types cycled from --task-types; each reference is a --seconds trim of a random source at --height (aspect
kept), the miner's input that reference downscaled by the task's scale, exactly as the demo does.

Sources come from --clips-dir (default $VIDAIO_CLIPS_DIR, else ../shared/data/clips); with fewer than three
clips there, three synthetic ones are rendered (vidaio_cli.synthetic). --seed picks the sources, trims,
split points and the validator's frame sampling.

Output: a table per item, the mean score and counts, the machine (nproc, CPU model, RAM), and a JSON file
(--out, default bench-out/round-<task>.json) with every item, the settings and the machine. Exit status as
the demo: 0 every item passed every gate, 1 the mesh did not answer some item, 2 some item failed a gate.

Usage:
  .venv/bin/python scripts/bench_round.py                                   # 5 x 30-s 720p compression
  .venv/bin/python scripts/bench_round.py --height 2160 --seconds 30        # the validator's real size
  .venv/bin/python scripts/bench_round.py --task upscaling --height 720 --seconds 5
  .venv/bin/python scripts/bench_round.py --height 144 --seconds 3 --clips-dir /tmp/clips   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HEAD_MIX = ((85.0, "av1", "CRF", 10.0), (89.0, "hevc", "CRF", 10.0), (93.0, "av1", "VBR", 5.0),
            (89.0, "av1", "VBR", 8.0), (85.0, "hevc", "VBR", 10.0))  # CRF items carry the protocol default
DEFAULT_TASK_TYPES = "SD2HD,HD24K,SD24K,SD24K,SD2HD"
DEFAULT_TIMEOUTS = {"compression": 180.0, "upscaling": 135.0}
DEFAULT_SECONDS = {"compression": 30.0, "upscaling": 5.0}  # upscaling: the content length the gateway answers
SYNTHETIC_SCENES = (("landscape", 11), ("clouds", 12), ("city", 13))


def parse_mix(text: str) -> list[tuple[float, str, str, float]]:
    """"85:av1:CRF,93:av1:VBR:5" -> [(85, av1, CRF, 10), (93, av1, VBR, 5)]."""
    mix = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        fields = part.split(":")
        if len(fields) not in (3, 4) or fields[1] not in ("av1", "hevc", "h264", "vp9") \
                or fields[2].upper() not in ("CRF", "VBR", "CBR"):
            raise argparse.ArgumentTypeError(f"bad mix entry {part!r}: use T:codec:MODE[:Mbps]")
        mix.append((float(fields[0]), fields[1], fields[2].upper(), float(fields[3]) if len(fields) == 4 else 10.0))
    if not mix:
        raise argparse.ArgumentTypeError("an empty mix")
    return mix


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__[__doc__.index("Usage:"):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("compression", "upscaling"), default="compression")
    parser.add_argument("--items", type=int, default=5, help="videos in the synapse (default 5)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="dendrite timeout in seconds (default 180 compression, 135 upscaling)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of each video (default 30 compression: three 10-s chunks; 5 upscaling)")
    parser.add_argument("--height", type=int, default=720,
                        help="reference height; compression frames are 16:9 (720 -> 1280x720; 2160 = 4K)")
    parser.add_argument("--clips-dir", type=Path, default=None,
                        help="source clips (default $VIDAIO_CLIPS_DIR, else ../shared/data/clips)")
    parser.add_argument("--mix", type=parse_mix, default=list(HEAD_MIX),
                        help="compression settings cycled over the items, T:codec:MODE[:Mbps],... "
                             "(default HEAD's: 85:av1:CRF,89:hevc:CRF,93:av1:VBR:5,89:av1:VBR:8,85:hevc:VBR:10)")
    parser.add_argument("--task-types", default=DEFAULT_TASK_TYPES, help="upscaling task types, cycled")
    parser.add_argument("--seed", type=int, default=85, help="picks sources, trims, splits and VMAF sampling")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench-out/round-<task>.json)")
    parser.add_argument("--keep-data", action="store_true", help="keep the mesh's data dir and service logs")
    parser.add_argument("--inputs-dir", type=Path, default=None,
                        help="build the inputs here and keep them; a later run with the same settings and seed "
                             "reuses them (inputs take ~100 s at 720p)")
    args = parser.parse_args(argv)
    args.timeout = args.timeout or DEFAULT_TIMEOUTS[args.task]
    args.seconds = args.seconds or DEFAULT_SECONDS[args.task]
    args.out = args.out or Path("bench-out") / f"round-{args.task}.json"
    args.task_types = [t.strip() for t in args.task_types.split(",") if t.strip()]
    if not 1 <= args.items <= 10 or args.seconds <= 0 or args.timeout <= 0:
        parser.error("--items must be 1-10, --seconds and --timeout positive")
    from mesh.codecs import TASK_SCALES

    if args.task == "upscaling":
        bad = [t for t in args.task_types if t not in TASK_SCALES]
        if bad or not args.task_types:
            parser.error(f"unknown task types {bad}; use {', '.join(TASK_SCALES)}")
        if any(args.height % TASK_SCALES[t] or (args.height // TASK_SCALES[t]) % 2 for t in args.task_types):
            parser.error(f"--height {args.height} must give an even input height for every task scale")
    elif args.height < 16 or args.height % 8:
        parser.error("--height must be a multiple of 8 (at least 16)")
    return args


def machine() -> dict:
    """nproc, the CPU model, RAM and GPUs (nvidia-smi, when there is one)."""
    model, ram_gib = platform.processor() or "unknown", None
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        ram_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=20, check=False)
        gpus = [line.strip() for line in query.stdout.splitlines() if line.strip()]
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu_model": model,
            "ram_gib": ram_gib, "gpus": gpus, "platform": platform.platform()}


def pick_clips(args: argparse.Namespace, workdir: Path) -> tuple[list[Path], str]:
    """The clips of --clips-dir; three synthetic ones (distinct scenes) when it has fewer than three."""
    from vidaio_cli.demo import clips_dir
    from vidaio_cli.inputs import CLIP_SUFFIXES

    directory = args.clips_dir or clips_dir()
    clips = sorted(p for p in directory.iterdir() if p.suffix.lower() in CLIP_SUFFIXES
                   and not p.name.startswith(".")) if directory.is_dir() else []
    if len(clips) >= 3:
        return clips, str(directory)
    from vidaio_cli.inputs import frame_size
    from vidaio_cli.synthetic import ClipSpec, make_clips

    width, height = frame_size(max(16, min(720, args.height) // 8 * 8))
    seconds = min(4.0, args.seconds / 3 if args.task == "compression" else args.seconds) + 0.5
    specs = [ClipSpec(f"synth_round_{scene}_{width}x{height}.mp4", width, height, "30", seconds, (scene,), seed=seed)
             for scene, seed in SYNTHETIC_SCENES]
    print(f"{directory} has {len(clips)} clips: rendering {len(specs)} synthetic {width}x{height} clips")
    made = make_clips(workdir / "synthetic", specs)
    return list(made.values()), f"synthetic (vidaio_cli.synthetic): {directory} has {len(clips)} clips"


def build_plan(args: argparse.Namespace, clips: list[Path], workdir: Path, rng: random.Random):
    """The RoundPlan and, per item, the sources it was cut from."""
    from mesh.media import probe
    from vidaio_cli.inputs import (
        CompressionInput,
        UpscalingInput,
        build_multi_source_reference,
        build_reference,
        build_upscaling_input,
        task_scale,
    )
    from vidaio_cli.validator import RoundPlan

    workdir.mkdir(parents=True, exist_ok=True)
    sources: list[list[str]] = []
    if args.task == "compression":
        items = []
        for index in range(args.items):
            threshold, codec, mode, bitrate = args.mix[index % len(args.mix)]
            chosen = rng.sample(clips, 3)
            reference = build_multi_source_reference(chosen, workdir / f"compress-{index}-reference.mp4",
                                                     seconds=args.seconds, height=args.height, rng=rng)
            items.append(CompressionInput(threshold, codec, mode, bitrate, reference))
            sources.append([clip.name for clip in chosen])
        return RoundPlan("head", [], items), sources
    long_enough = [clip for clip in clips if probe(clip).duration >= args.seconds + 0.05]
    if not long_enough:
        raise SystemExit(f"no clip lasts {args.seconds} s; use shorter --seconds or other --clips-dir")
    items = []
    for index in range(args.items):
        task_type = args.task_types[index % len(args.task_types)]
        clip = rng.choice(long_enough)
        start = round(rng.uniform(0, probe(clip).duration - args.seconds - 0.05), 3)
        reference = build_reference(clip, workdir / f"upscale-{index}-reference.mp4", start=start,
                                    seconds=args.seconds, height=args.height)
        scale = task_scale(task_type)
        payload = build_upscaling_input(reference, workdir / f"upscale-{index}-input.mp4", scale=scale)
        items.append(UpscalingInput(task_type, scale, reference, payload))
        sources.append([f"{clip.name}@{start:g}s"])
    return RoundPlan("head", items, []), sources


def _inputs_key(args: argparse.Namespace, clips: list[Path]) -> dict:
    """What the inputs depend on: a kept set is reused only when all of it matches."""
    return {"task": args.task, "items": args.items, "seconds": args.seconds, "height": args.height,
            "mix": [list(entry) for entry in args.mix], "task_types": args.task_types, "seed": args.seed,
            "clips": [[clip.name, clip.stat().st_size] for clip in clips]}


def load_or_build_plan(args: argparse.Namespace, clips: list[Path], workdir: Path, rng: random.Random):
    """build_plan, or the plan kept in --inputs-dir by an earlier run with the same key (the random
    generator resumes where that run's left it, so the validator samples the same frames)."""
    if args.inputs_dir is None:
        return build_plan(args, clips, workdir / "inputs", rng)
    import pickle

    kept = args.inputs_dir / "plan.pickle"
    key = _inputs_key(args, clips)
    if kept.is_file():
        saved = pickle.loads(kept.read_bytes())
        if saved["key"] == key:
            rng.setstate(saved["rng"])
            print(f"inputs: reusing {args.inputs_dir}")
            return saved["plan"], saved["sources"]
    plan, sources = build_plan(args, clips, args.inputs_dir, rng)
    kept.write_bytes(pickle.dumps({"key": key, "plan": plan, "sources": sources, "rng": rng.getstate()}))
    return plan, sources


def play(args: argparse.Namespace, plan, workdir: Path, rng: random.Random) -> tuple[object, dict]:
    """Start the mesh, play the round (handshakes, then the one synapse), score it; returns the report and
    the timings."""
    from rich.console import Console

    from vidaio_cli.demo import mesh_session, play_supervised, round_progress
    from vidaio_cli.identities import validator_wallet
    from vidaio_cli.validator import LocalValidator

    console = Console()
    started = time.monotonic()
    with mesh_session(console, use_running=False, mesh_dir=None, axon=None, miner_hotkey=None,
                      validator_wallet_dir=None, keep_data=args.keep_data) as (handle, mesh), \
            round_progress(console) as progress:
        ready = time.monotonic()
        validator = LocalValidator(validator_wallet(handle.validator_wallet_dir), workdir / "round", rng=rng,
                                   progress=progress, timeouts={args.task: args.timeout})
        report = asyncio.run(play_supervised(validator, handle, plan, mesh, console))
        if args.keep_data and mesh is not None:
            console.print(f"mesh data and logs kept in {mesh.root}")
    return report, {"mesh_start_s": round(ready - started, 1), "round_s": round(time.monotonic() - ready, 1)}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _gates(item) -> str:
    if item.error:
        return f"no answer: {item.error[:60]}"
    failed = [gate.name for gate in item.gates if not gate.passed]
    return "ok" if item.gates and not failed else ",".join(failed) or "none ran"


def rows(args: argparse.Namespace, plan, report) -> list[dict]:
    """One dict per item: the report's fields plus the settings, sources and whether T was met."""
    out = []
    for index, item in enumerate(report.items):
        row = {**item.to_json(), "answered": item.answered, "gate_summary": _gates(item)}
        if args.task == "compression":
            setting = plan.compression[index]
            row.update(threshold=setting.vmaf_threshold, codec=setting.target_codec, mode=setting.codec_mode,
                       bitrate_mbps=setting.target_bitrate if setting.codec_mode != "CRF" else None,
                       head_score=item.predicted_score or 0.0,
                       met=item.gates_passed and item.vmaf_neg is not None and item.vmaf_neg >= setting.vmaf_threshold)
        else:
            row.update(task_type=plan.upscaling[index].task_type, scale=plan.upscaling[index].scale)
        out.append(row)
    return out


def print_table(args: argparse.Namespace, items: list[dict], report) -> dict:
    """The per-item table, then the summary (returned for the JSON)."""
    answered = sum(row["answered"] for row in items)
    if args.task == "compression":
        print(f"\n{'item':>4}  {'T/codec/mode':<22} {'answered':<8} {'seconds':>7}  {'VMAF-NEG vs T':<15} "
              f"{'ratio':>6} {'HEAD score':>10}  gates")
        for row in items:
            label = f"{row['threshold']:g}/{row['codec']}/{row['mode']}" + \
                (f" {row['bitrate_mbps']:g} Mbps" if row["bitrate_mbps"] else "")
            vmaf_neg = row["vmaf_neg"]
            versus = "-" if vmaf_neg is None else f"{vmaf_neg:.2f} {'>=' if vmaf_neg >= row['threshold'] else '<'} " \
                                                  f"{row['threshold']:g}"
            print(f"{row['index']:>4}  {label:<22} "
                  f"{'yes' if row['answered'] else '':<8} {_fmt(row['seconds'], 1):>7}  {versus:<15} "
                  f"{_fmt(row['ratio']):>6} {row['head_score']:>10.4f}  {row['gate_summary']}")
        summary = {"mean_head_score": round(statistics.fmean(r["head_score"] for r in items), 4),
                   "answered": answered, "met": sum(r["met"] for r in items), "items": len(items)}
        print(f"\nmean HEAD score {summary['mean_head_score']:.4f}; answered {answered}/{len(items)}; "
              f"met T (every gate passed, VMAF-NEG >= T) {summary['met']}/{len(items)}")
    else:
        print(f"\n{'item':>4}  {'task':<12} {'answered':<8} {'seconds':>7}  {'VMAF':>6}  {'gates passed':<12} "
              f"{'score':>7}  gates")
        for row in items:
            print(f"{row['index']:>4}  {row['task_type'] + ' x' + str(row['scale']):<12} "
                  f"{'yes' if row['answered'] else '':<8} {_fmt(row['seconds'], 1):>7}  {_fmt(row['vmaf']):>6}  "
                  f"{'yes' if row['gates_passed'] else 'no':<12} {_fmt(row['predicted_score'], 4):>7}  "
                  f"{row['gate_summary']}")
        scores = [r["predicted_score"] for r in items if r["predicted_score"] is not None]
        summary = {"answered": answered, "gates_passed": sum(r["gates_passed"] for r in items), "items": len(items),
                   "mean_vmaf": round(statistics.fmean(r["vmaf"] for r in items if r["vmaf"] is not None), 3)
                   if any(r["vmaf"] is not None for r in items) else None,
                   "mean_score": round(statistics.fmean(scores), 4) if scores else None}
        print(f"\nanswered {answered}/{len(items)}; every gate passed {summary['gates_passed']}/{len(items)}; "
              f"mean VMAF {summary['mean_vmaf']}; mean S_F {summary['mean_score']} (None: PIE-APP unavailable)")
    print("seconds: the validator's wait for the one synapse (every item of it shares it)")
    for route, error in report.synapse_errors.items():
        print(f"synapse error {route}: {error}")
    notes = sorted({note for row in items for note in row["notes"]})
    for note in notes:
        print(f"note: {note}")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import typer

    from vidaio_cli.demo import exit_code, stop_on_sigterm

    stop_on_sigterm()
    rng = random.Random(args.seed)
    box = machine()
    with tempfile.TemporaryDirectory(prefix="bench-round-") as work:
        workdir = Path(work)
        clips, origin = pick_clips(args, workdir)
        print(f"sources: {len(clips)} clips from {origin}")
        started = time.monotonic()
        plan, sources = load_or_build_plan(args, clips, workdir, rng)
        inputs_s = round(time.monotonic() - started, 1)
        print(f"inputs: {args.items} x {args.seconds:g}-s {args.task} references at height {args.height} "
              f"in {inputs_s} s")
        try:
            report, timings = play(args, plan, workdir, rng)
        except typer.Exit as exc:  # the mesh did not start (mesh_session printed why)
            return exc.exit_code
        items = rows(args, plan, report)
        for row, used in zip(items, sources):
            row["sources"] = used
    summary = print_table(args, items, report)
    print(f"machine: nproc {box['nproc']}, {box['cpu_model']}, RAM {box['ram_gib']} GiB"
          + (f", GPU {', '.join(box['gpus'])}" if box["gpus"] else ""))
    unused = "task_types" if args.task == "compression" else "mix"
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
                if key != unused}
    result = {"task": args.task, "settings": settings, "machine": box, "sources_from": origin,
              "timings": {"inputs_s": inputs_s, **timings}, "summary": summary,
              "round": {"miner": report.miner, "warrant_task": report.warrant_task,
                        "content_length": report.content_length, "synapse_errors": report.synapse_errors,
                        "mesh_answered": report.mesh_answered, "all_gates_passed": report.all_gates_passed},
              "items": items}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"JSON: {args.out}")
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
