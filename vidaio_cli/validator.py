"""A local validator: serves validator-style inputs over loopback HTTP, talks to a miner's axon with a real
bittensor Dendrite signed by its own wallet, downloads what comes back and scores it like the subnet.

The round follows the HEAD validator (spec §2.3): TaskWarrantProtocol (60 s), LengthCheckProtocol (10 s),
then one VideoUpscalingProtocol (135 s) and one VideoCompressionProtocol (180 s) carrying up to 5 videos
each, sent in parallel. `era="old"` plays an Era A validator instead: 10-s handshakes and one video per
synapse (40 s each), with the Era A request shapes and scoring.

Who plays (wallets, Dendrite, the miner's axon) is in `vidaio_cli.identities`; how each answer is downloaded
and judged is in `vidaio_cli.answers`. This module serves the inputs, sends the synapses and assembles the
round's report.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

from bittensor_wallet import Wallet
from rich.progress import Progress

from miner_gateway.protocol import (
    CompressionMinerPayload,
    LengthCheckProtocol,
    TaskWarrantProtocol,
    UpscalingMinerPayload,
    Version,
    VideoCompressionProtocol,
    VideoUpscalingProtocol,
)
from vidaio_cli import era_a
from vidaio_cli.answers import COMPRESSION_ROUTE, UPSCALING_ROUTE, Answer, AnswerScorer, flag_duplicate_urls
from vidaio_cli.identities import LOOPBACK, MinerTarget, make_dendrite
from vidaio_cli.inputs import CompressionInput, UpscalingInput
from vidaio_cli.scorecard import RoundReport
from vidaio_cli.timed_progress import tracked

HEAD_VERSION = Version(major=2, minor=3, patch=0)
ERA_A_VERSION = Version(major=2, minor=1, patch=1)
TIMEOUTS = {
    "head": {"warrant": 60.0, "length": 10.0, "upscaling": 135.0, "compression": 180.0},
    "old": {"warrant": 10.0, "length": 10.0, "upscaling": 40.0, "compression": 40.0},
}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged: the scorecard is the output."""


class InputServer:
    """Serves files from 127.0.0.1 under unguessable paths, the way validators hand out presigned URLs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="input-server", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url_for(self, path: Path) -> str:
        token = secrets.token_hex(16)
        (self.root / token).mkdir()
        os.symlink(path.resolve(), self.root / token / path.name)
        return f"http://{LOOPBACK}:{self.port}/{token}/{path.name}"


@dataclass
class RoundPlan:
    era: str
    upscaling: list[UpscalingInput]
    compression: list[CompressionInput]


def _status(synapse) -> tuple[bool, str]:
    info = synapse.dendrite
    if info is not None and info.status_code == 200:
        return True, ""
    code = info.status_code if info is not None else None
    message = info.status_message if info is not None else "no reply"
    return False, f"HTTP {code}: {message}"


class LocalValidator:
    """One validator identity and Dendrite; `play` runs a whole round against one miner."""

    def __init__(self, wallet: Wallet, workdir: Path, *, rng: random.Random | None = None,
                 progress: Progress | None = None, timeouts: dict[str, float] | None = None) -> None:
        """`timeouts` overrides entries of the era's TIMEOUTS (warrant, length, upscaling, compression)."""
        self.wallet = wallet
        self.timeouts = dict(timeouts or {})
        self.workdir = workdir
        self.rng = rng or random.Random()
        self.progress = progress
        self.dendrite = make_dendrite(wallet)

    def limits(self, era: str) -> dict[str, float]:
        return {**TIMEOUTS[era], **self.timeouts}

    @property
    def hotkey(self) -> str:
        return self.wallet.hotkey.ss58_address

    async def _send(self, miner: MinerTarget, synapse, timeout: float, description: str):
        started = time.monotonic()
        reply = await tracked(self.progress, description, timeout,
                              self.dendrite.call(miner.axon_info(), synapse, timeout=timeout, deserialize=False))
        return reply, time.monotonic() - started

    async def handshake(self, miner: MinerTarget, era: str) -> tuple[str | None, int | None, dict[str, str]]:
        """TaskWarrant and LengthCheck; returns the warranted task, the content length the validator would
        use (HEAD: 5 only for an answer of 5, else 10; Era A: 10 only for 10, else 5) and errors."""
        version = HEAD_VERSION if era == "head" else ERA_A_VERSION
        limits = self.limits(era)
        errors: dict[str, str] = {}
        warrant, _ = await self._send(miner, TaskWarrantProtocol(version=version), limits["warrant"],
                                      "TaskWarrantProtocol")
        ok, why = _status(warrant)
        if not ok:
            errors["TaskWarrantProtocol"] = why
        task = warrant.warrant_task.name if ok and warrant.warrant_task is not None else None
        length_reply, _ = await self._send(miner, LengthCheckProtocol(version=version), limits["length"],
                                           "LengthCheckProtocol")
        ok, why = _status(length_reply)
        if not ok:
            errors["LengthCheckProtocol"] = why
        answered = int(length_reply.max_content_length) if ok else None
        if era == "head":
            length = 5 if answered == 5 else 10
        else:
            length = 10 if answered == 10 else 5
        return task, length, errors

    async def _bundle(self, miner: MinerTarget, synapse, count: int, timeout: float) -> list[Answer]:
        """HEAD: one synapse carries every item; a short URL list is padded with "" as the validator does."""
        reply, seconds = await self._send(miner, synapse, timeout, f"{type(synapse).__name__} × {count}")
        ok, why = _status(reply)
        urls = list(reply.miner_response.optimized_video_urls) if ok else []
        return [Answer(urls[i] if i < len(urls) else "", seconds, why) for i in range(count)]

    async def _one_by_one(self, miner: MinerTarget, synapses: list, timeout: float) -> list[Answer]:
        """Era A: one synapse per video, one after another."""
        answers = []
        for index, synapse in enumerate(synapses):
            reply, seconds = await self._send(miner, synapse, timeout, f"{type(synapse).__name__} #{index} (Era A)")
            ok, why = _status(reply)
            answers.append(Answer(reply.miner_response.optimized_video_url if ok else "", seconds, why))
        return answers

    async def _exchange(self, miner: MinerTarget, plan: RoundPlan, up_urls: list[str],
                        comp_urls: list[str]) -> tuple[list[Answer], list[Answer]]:
        """Send both tasks in parallel; one Answer per item of each task."""
        if plan.era == "old":
            up_synapses = [era_a.VideoUpscalingProtocol(
                version=ERA_A_VERSION, round_id=str(uuid.uuid4()),
                miner_payload=era_a.UpscalingMinerPayload(reference_video_url=url, task_type=item.task_type))
                for url, item in zip(up_urls, plan.upscaling)]
            comp_synapses = [era_a.VideoCompressionProtocol(
                version=ERA_A_VERSION, round_id=str(uuid.uuid4()),
                miner_payload=era_a.CompressionMinerPayload(reference_video_url=url,
                                                            vmaf_threshold=item.vmaf_threshold))
                for url, item in zip(comp_urls, plan.compression)]
            return tuple(await asyncio.gather(
                self._one_by_one(miner, up_synapses, self.limits("old")["upscaling"]),
                self._one_by_one(miner, comp_synapses, self.limits("old")["compression"])))
        sends = []
        if plan.upscaling:
            payload = UpscalingMinerPayload(reference_video_urls=up_urls,
                                            task_types=[item.task_type for item in plan.upscaling])
            sends.append(self._bundle(miner, VideoUpscalingProtocol(
                version=HEAD_VERSION, round_id=str(uuid.uuid4()), miner_payload=payload),
                len(plan.upscaling), self.limits("head")["upscaling"]))
        if plan.compression:
            items = plan.compression
            payload = CompressionMinerPayload(
                reference_video_urls=comp_urls, vmaf_threshold=items[0].vmaf_threshold,
                vmaf_thresholds=[i.vmaf_threshold for i in items], target_codec=items[0].target_codec,
                target_codecs=[i.target_codec for i in items], codec_mode=items[0].codec_mode,
                codec_modes=[i.codec_mode for i in items], target_bitrate=items[0].target_bitrate,
                target_bitrates=[i.target_bitrate for i in items])
            sends.append(self._bundle(miner, VideoCompressionProtocol(
                version=HEAD_VERSION, round_id=str(uuid.uuid4()), miner_payload=payload),
                len(items), self.limits("head")["compression"]))
        answers = iter(await asyncio.gather(*sends))
        return (next(answers) if plan.upscaling else []), (next(answers) if plan.compression else [])

    async def play(self, miner: MinerTarget, plan: RoundPlan) -> RoundReport:
        """Handshake, send, download and score; never raises for a miner failure (it is in the report).
        The inputs stay served until the round is scored, as presigned URLs outlive the query."""
        with InputServer(self.workdir / "served") as server:
            up_urls = [server.url_for(item.payload) for item in plan.upscaling]
            comp_urls = [server.url_for(item.payload) for item in plan.compression]
            try:
                warrant, length, errors = await self.handshake(miner, plan.era)
                up_answers, comp_answers = await self._exchange(miner, plan, up_urls, comp_urls)
            finally:
                await self.dendrite.aclose_session()
            return await self._score_round(miner, plan, warrant, length, errors, up_answers, comp_answers)

    async def _score_round(self, miner: MinerTarget, plan: RoundPlan, warrant: str | None, length: int,
                           errors: dict[str, str], up_answers: list[Answer],
                           comp_answers: list[Answer]) -> RoundReport:
        scorer = AnswerScorer(self.workdir, plan.era, self.rng, self.progress)
        results = await scorer.upscaling(plan.upscaling, up_answers, content_length=length or 5)
        results += await scorer.compression(plan.compression, comp_answers)
        for route, answers in ((UPSCALING_ROUTE, up_answers), (COMPRESSION_ROUTE, comp_answers)):
            failed = [(index, answer.error) for index, answer in enumerate(answers) if answer.error]
            if plan.era == "head" and failed:
                errors[route] = failed[0][1]
            elif failed:
                errors.update({f"{route} #{index}": error for index, error in failed})
        flag_duplicate_urls(results)
        return RoundReport(era=plan.era, miner=str(miner), warrant_task=warrant, content_length=length,
                           items=results, synapse_errors=errors)
