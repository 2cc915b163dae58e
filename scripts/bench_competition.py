"""Cost and score of our competition entry against the reference compressor's policy, measured in one run.

For each clip length and threshold, one batch of one item (spec competition.md §3) goes to:
  ours       the real route service: `python -m uvicorn competition_app.app:app` started fresh per batch on
             loopback (a fresh sandbox per batch, §4), roots in temp dirs, POST /compress as the validator
             sends it. Wall time = start until /health answers (cold start is billed, §5.3) + the /compress call.
  reference  §7's policy: one encode at the fixed CQ by threshold (30/35/40), av1_nvenc where it opens, else
             libsvtav1 at the same CQ (vidaio_cli.competition_scoring.reference_args). Wall time = the encode
             (its app's start-up is not counted, which favours it).
Both outputs get the scorer's checks that need no VMAF (competition_app.item.check), VMAF-NEG over every
frame (mesh.vmaf.measure, harmonic mean), the §5.2 media score (mesh.scoring.head_compression_score), the
§5.3 locked-rate cost for --gpu/--cpus, and the §5.3 final score of the two contenders against each other.
Sources are the clips looped to each length (x264 CRF 18) with a lavfi sine audio track, so audio copy is
exercised; without real clips a synthetic clip is used. The sandbox's own overhead (create, probes, sync,
terminate) is the same for both and is left out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from competition_app.contract import Item  # noqa: E402
from competition_app.item import OutputRejected, Plan, audio_fingerprint, check  # noqa: E402
from mesh.codecs import NVENC_ENCODERS  # noqa: E402
from mesh.ffmpeg import nvenc_available, run_ffmpeg_sync  # noqa: E402
from mesh.media import probe  # noqa: E402
from mesh.scoring import head_compression_score  # noqa: E402
from mesh.vmaf import measure  # noqa: E402
from vidaio_cli import competition_scoring as cs  # noqa: E402
from vidaio_cli.demo import clips_dir  # noqa: E402
from vidaio_cli.synthetic import ClipSpec, make_clip  # noqa: E402


def source_clips(clips_dir: Path, names: list[str], limit: int, scratch: Path) -> list[Path]:
    """The named clips (or the first `limit`) from `clips_dir`; a synthetic clip when there are none."""
    if names and not clips_dir.is_dir():
        raise SystemExit(f"--clips given but {clips_dir} is not a directory")
    if clips_dir.is_dir():
        found = [clips_dir / name for name in names] if names else sorted(clips_dir.glob("*.mp4"))[:limit]
        missing = [path for path in found if not path.is_file()]
        if missing:
            raise SystemExit(f"no such clip: {', '.join(map(str, missing))}")
        if found:
            return found
    print(f"no clips in {clips_dir}: using a synthetic clip", file=sys.stderr)
    return [make_clip(ClipSpec("synth_bench_320x240_30fps.mp4", 320, 240, "30", 3.0, ("clouds", "city")), scratch)]


def build_source(clip: Path, seconds: float, dest: Path) -> Path:
    """`clip` looped to `seconds`, re-encoded x264 CRF 18 (as validator inputs are), with a sine audio track."""
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-stream_loop", "-1", "-i", str(clip),
                     "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000", "-t", f"{seconds:.3f}",
                     "-map", "0:v:0", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                     "-pix_fmt", "yuv420p", "-vf", "setsar=1", "-c:a", "aac", "-b:a", "96k",
                     "-movflags", "+faststart", str(dest)], timeout=900)
    return dest


@contextmanager
def route_service(root: Path, cpus: int, extra_env: dict[str, str]):
    """The route service under uvicorn on a loopback socket it inherits; yields (url, seconds to /health)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = dict(os.environ, PYTHONPATH=str(REPO), COMPETITION_INPUT_ROOT=str(root / "inputs"),
               COMPETITION_OUTPUT_ROOT=str(root / "output"), COMPETITION_SCRATCH_DIR=str(root / "scratch"),
               COMPETITION_CPUS=str(cpus), **extra_env)
    log = open(root / "service.log", "ab")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "competition_app.app:app", "--fd", str(sock.fileno())],
                            cwd=REPO, env=env, pass_fds=[sock.fileno()], stdout=log, stderr=subprocess.STDOUT)
    sock.close()
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the route service exited; see {root / 'service.log'}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def run_ours(source: Path, threshold: float, root: Path, cpus: int, tag: str,
             extra_env: dict[str, str]) -> tuple[Path | None, float]:
    """One batch of one CRF item through a fresh route service; (output or None, wall seconds)."""
    output = root / "output" / f"{tag}.mp4"
    with route_service(root, cpus, extra_env) as (url, startup):
        began = time.monotonic()
        body = {"items": [{"evaluation_id": tag, "input_path": str(source), "output_path": str(output),
                           "codec": "AV1", "codec_mode": "CRF", "vmaf_threshold": threshold}]}
        answer = httpx.post(f"{url}/compress", json=body, timeout=3700).json()
        wall = startup + time.monotonic() - began
    path = answer["results"][0]["output_path"]
    return (Path(path) if path else None), wall


def run_reference(source: Path, threshold: float, dest: Path, nvenc: bool) -> tuple[Path | None, float]:
    """§7's single encode; (output or None, wall seconds)."""
    began = time.monotonic()
    try:
        run_ffmpeg_sync(cs.reference_args(source, dest, threshold=threshold, nvenc=nvenc), timeout=3600)
    except Exception as exc:  # noqa: BLE001 - a failed encode is an invalid item, reported as such
        print(f"reference failed on {source.name}: {exc}", file=sys.stderr)
        return None, time.monotonic() - began
    return dest, time.monotonic() - began


def score(source: Path, output: Path | None, threshold: float, wall: float, args) -> dict:
    """Validity, VMAF-NEG, ratio, media score and cost of one output, as the scorer would see it."""
    facts = probe(source)
    row = {"wall_s": round(wall, 2), "cost_usd": cs.item_cost(wall, 1, args.gpu, args.cpus), "valid": False,
           "reason": "no output", "vmaf_neg": None, "ratio": None, "media": 0.0}
    if output is None:
        return row
    row["ratio"] = round(facts.size_bytes / output.stat().st_size, 3)
    item = Item(input_path=str(source), output_path=str(output), vmaf_threshold=threshold)
    try:
        audio = asyncio.run(audio_fingerprint(source, output.parent)) if facts.has_audio else None
        asyncio.run(check(output, Plan(item, source, output, facts), audio))
    except OutputRejected as exc:
        row["reason"] = str(exc)
        return row
    vmaf = asyncio.run(measure(output, source, models=("vmaf_neg",))).vmaf_neg
    rate = output.stat().st_size / facts.size_bytes
    row.update(valid=True, reason="", vmaf_neg=round(vmaf, 3),
               media=round(head_compression_score(vmaf, rate, threshold), 4))
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips-dir", type=Path, default=clips_dir())
    parser.add_argument("--clips", default="", help="comma-separated clip file names (default: the first --max-clips)")
    parser.add_argument("--max-clips", type=int, default=2)
    parser.add_argument("--lengths", default="5,10,30", help="seconds, comma-separated")
    parser.add_argument("--thresholds", default="89", help="VMAF thresholds, comma-separated")
    parser.add_argument("--gpu", choices=sorted(cs.GPU_RATES), default="L4")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                        help="cores billed (and given to our service, at most this machine's)")
    parser.add_argument("--max-video-length", type=float, default=3600.0, help="the manifest's, for length weights")
    parser.add_argument("--service-env", action="append", default=[], metavar="COMPETITION_X=VALUE",
                        help="a setting for our route service (repeatable), e.g. COMPETITION_BATCH_TIMEOUT_SECONDS=60")
    parser.add_argument("--out", type=Path, default=Path("bench-out/competition.json"))
    args = parser.parse_args(argv)
    lengths = [float(x) for x in args.lengths.split(",")]
    thresholds = [float(x) for x in args.thresholds.split(",")]
    if any("=" not in setting or not setting.startswith("COMPETITION_") for setting in args.service_env):
        parser.error("--service-env takes COMPETITION_<NAME>=VALUE")
    extra_env = dict(setting.split("=", 1) for setting in args.service_env)
    nvenc = nvenc_available(NVENC_ENCODERS["av1"].name)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-competition-") as tmp:
        work = Path(tmp)
        for folder in ("inputs", "output", "scratch", "reference"):
            (work / folder).mkdir()
        for clip in source_clips(args.clips_dir, [n for n in args.clips.split(",") if n], args.max_clips, work):
            for seconds in lengths:
                source = build_source(clip, seconds, work / "inputs" / f"{clip.stem}_{seconds:g}s.mp4")
                for threshold in thresholds:
                    tag = f"{clip.stem}_{seconds:g}s_T{threshold:g}"
                    ref_out, ref_wall = run_reference(source, threshold, work / "reference" / f"{tag}.mp4", nvenc)
                    our_out, our_wall = run_ours(source, threshold, work, min(args.cpus, os.cpu_count() or 1), tag,
                                                  extra_env)
                    row = {"clip": clip.name, "seconds": probe(source).duration, "threshold": threshold,
                           "ours": score(source, our_out, threshold, our_wall, args),
                           "reference": score(source, ref_out, threshold, ref_wall, args)}
                    rows.append(row)
                    print_row(row)
    report = summarise(rows, args, nvenc)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_summary(report)
    return report


def summarise(rows: list[dict], args, nvenc: bool) -> dict:
    """The per-item rows, the totals and the §5.3 final scores of the two contenders."""
    results = {name: [cs.ItemResult(row["seconds"], row[name]["valid"], row[name]["media"], row[name]["cost_usd"])
                      for row in rows] for name in ("ours", "reference")}
    finals = {label: cs.final_scores(results, factors, args.max_video_length)
              for label, factors in (("example_manifest", cs.EXAMPLE_FACTORS), ("comp01", cs.COMP01_FACTORS))}
    media = {name: finals["example_manifest"][name]["media_agg"] for name in results}
    cost = {name: sum(item.cost for item in items) for name, items in results.items()}
    return {"gpu": args.gpu, "cpus": args.cpus, "usd_per_second": cs.dollars_per_second(args.gpu, args.cpus),
            "reference_encoder": "av1_nvenc" if nvenc else "libsvtav1", "machine_cpus": os.cpu_count(),
            "service_env": dict(setting.split("=", 1) for setting in args.service_env),
            "rows": rows, "final": finals, "total_cost_usd": cost,
            "media_ratio": media["ours"] / media["reference"] if media["reference"] else None,
            "cost_ratio": cost["ours"] / cost["reference"] if cost["reference"] else None}


def print_row(row: dict) -> None:
    cells = [f"{row['clip'][:28]:28} {row['seconds']:5.1f}s T{row['threshold']:g}"]
    for name in ("ours", "reference"):
        r = row[name]
        vmaf = f"{r['vmaf_neg']:6.2f}" if r["vmaf_neg"] is not None else "   -  "
        cells.append(f"{name}: vmaf {vmaf} x{r['ratio'] or 0:6.2f} media {r['media']:.3f} "
                     f"{r['wall_s']:6.1f}s ${r['cost_usd']:.5f}{'' if r['valid'] else ' INVALID ' + r['reason']}")
    print(" | ".join(cells), flush=True)  # noqa: T201 - a benchmark prints its table


def print_summary(report: dict) -> None:
    for label, scores in report["final"].items():
        for name, value in scores.items():
            print(f"{label:16} {name:9} media {value['media_agg']:.4f} cost_eff {value['cost_agg']:.4f} "  # noqa: T201
                  f"coverage {value['coverage']:.4f} final {value['final']:.4f}")
    media, cost = report["media_ratio"], report["cost_ratio"]
    print(f"media ours/reference: {media if media is None else round(media, 3)}; "  # noqa: T201
          f"cost ours/reference: {cost if cost is None else round(cost, 3)} "
          f"({report['gpu']} + {report['cpus']} cores, ${report['usd_per_second']:.6f}/s)")


if __name__ == "__main__":
    main()
