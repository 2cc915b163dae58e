"""Verification: the validator's checks on a whole candidate (gates, VMAF and VMAF-NEG on every frame), and
what the search learns from it. Probes measure scenes alone; only the whole file is what gets scored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from compressor_svc.context import JobContext
from compressor_svc.job import MAX_VMAF_DELTA, Candidate
from compressor_svc.planning import verify_subsample
from compressor_svc.search import Allocation, Probe
from mesh.errors import GateFailed
from mesh.gates import all_passed, compression_gates, failures, vmaf_gates
from mesh.media import probe
from mesh.scoring import compression_rate, head_compression_score
from mesh.vmaf import VmafScores, measure

# Gates whose failure is a bug in the output's format, not a weak score.
STRUCTURAL_GATES = {"resolution", "codec", "container", "profile", "pix_fmt", "sar", "fps", "color_tags",
                    "frame_count"}


async def verify(ctx: JobContext, output: Path, allocation: Allocation, attempt: int) -> Candidate:
    """The validator's checks on the whole file: gates, VMAF and VMAF-NEG on every frame."""
    frames = ctx.source.frame_count
    ctx.reporter.update("verify", 0, frames, "frames", f"full VMAF + VMAF-NEG of candidate {attempt + 1}")
    media = await asyncio.to_thread(probe, output)
    subsample = verify_subsample(ctx)
    started = time.monotonic()
    scores = await measure(output, ctx.source_path, n_subsample=subsample, n_threads=ctx.options.threads,
                           timeout=ctx.timeout())
    ctx.costs.observe_vmaf(ctx.mpx(frames), subsample, 2, time.monotonic() - started)
    job = ctx.job
    gates = [*compression_gates(ctx.source, media, job.codec, job.mode, job.bitrate_mbps),
             *vmaf_gates(scores.vmaf, scores.vmaf_neg, job.threshold, MAX_VMAF_DELTA)]
    rate = compression_rate(ctx.source.size_bytes, media.size_bytes)
    passed = all_passed(gates)
    score = head_compression_score(scores.vmaf_neg, rate, job.threshold) if passed else 0.0
    meets = passed and scores.vmaf_neg >= ctx.targets.aim
    ctx.reporter.update("verify", frames, frames, "frames",
                        f"candidate {attempt + 1}: vmaf {scores.vmaf:.2f} vmaf-neg {scores.vmaf_neg:.2f} "
                        f"ratio {1 / rate:.2f} score {score:.3f} size {media.size_bytes} B")
    return Candidate(output, media, scores, allocation.qs, gates, score, meets)


async def unverified(ctx: JobContext, output: Path, allocation: Allocation,
                     why: str = "deadline: no time to measure the output") -> Candidate:
    """A candidate not measured (the deadline left no time, or a lean job): the validator's format, ratio
    and bitrate gates (a probe of the file), and the search's prediction (already less the proxy's spread)
    as its VMAF-NEG. An output predicted to meet the target beats none: an empty answer scores 0."""
    media = await asyncio.to_thread(probe, output)
    job = ctx.job
    gates = compression_gates(ctx.source, media, job.codec, job.mode, job.bitrate_mbps)
    predicted = float(allocation.vmaf_neg)
    scores = VmafScores((0,), {"vmaf": (predicted,), "vmaf_neg": (predicted,)})
    passed = all_passed(gates)
    rate = compression_rate(ctx.source.size_bytes, media.size_bytes)
    score = head_compression_score(predicted, rate, job.threshold) if passed else 0.0
    ctx.notes.append(f"{why}; its VMAF-NEG is the search's prediction")
    return Candidate(output, media, scores, allocation.qs, gates, score, passed and predicted >= ctx.targets.aim)


def check_structure(candidate: Candidate) -> None:
    """A wrong size, codec, container or frame count is a bug, not a weak score: fail the job."""
    structural = [g for g in candidate.gates if g.name in STRUCTURAL_GATES and not g.passed]
    if structural:
        raise GateFailed(f"output failed the validator's gates: {failures(structural)}")


def learn_from(ctx: JobContext, candidate: Candidate) -> None:
    """Each scene's slice of the full verification becomes an exact point on its curve."""
    for state, q in zip(ctx.scenes, candidate.qs):
        measured = candidate.scores.score("vmaf_neg", state.scene.start, state.scene.end)
        path = state.files.get(q)
        size = path.stat().st_size if path is not None else int(state.curve(ctx.encoder).size(q))
        state.record(Probe(q, measured, size))
