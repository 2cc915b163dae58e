"""What a miner answered, downloaded and judged the way the subnet's validator would.

The round (`vidaio_cli.validator`) only talks to the miner; this module turns each item's answer into a
scored `ItemResult`: a transport error or a missing URL scores 0, otherwise the URL is downloaded and handed
to the judges (`vidaio_cli.judging`: gates, VMAF, the score). Items of one query that share a URL are zeroed
afterwards, as at the validator.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

from rich.progress import Progress

from mesh.errors import MeshError
from mesh.ffmpeg import FfmpegError
from mesh.gates import Gate
from mesh.sources import SourcePolicy, fetch
from miner_gateway.protocol import VideoCompressionProtocol, VideoUpscalingProtocol
from vidaio_cli.inputs import CompressionInput, UpscalingInput
from vidaio_cli.judging import Verdict, judge_compression, judge_upscaling
from vidaio_cli.scorecard import ItemResult
from vidaio_cli.timed_progress import tracked

MIN_URL_LENGTH = 10
UPSCALING_ROUTE = VideoUpscalingProtocol.__name__
COMPRESSION_ROUTE = VideoCompressionProtocol.__name__
DOWNLOAD_TIMEOUT = 300.0
MAX_DOWNLOAD_BYTES = 4 << 30


class Answer(NamedTuple):
    """One item as the validator received it: the URL ("" for none), the synapse's round trip, and the
    transport error ("" when the synapse came back with HTTP 200)."""

    url: str
    seconds: float
    error: str


class AnswerScorer:
    """Scores one round's answers, item by item, under `workdir`/downloads."""

    def __init__(self, workdir: Path, era: str, rng: random.Random, progress: Progress | None = None) -> None:
        self.workdir = workdir
        self.era = era
        self.rng = rng
        self.progress = progress

    async def upscaling(self, items: list[UpscalingInput], answers: list[Answer],
                        content_length: int) -> list[ItemResult]:
        results = []
        for index, (item, answer) in enumerate(zip(items, answers)):
            result = ItemResult(UPSCALING_ROUTE, f"{item.task_type} (×{item.scale})", index, answer.seconds,
                                answer.url)
            judge = functools.partial(judge_upscaling, item.reference, item.payload, task_scale=item.scale,
                                      content_length=content_length, era=self.era, rng=self.rng)
            results.append(await self._score(result, answer.error, judge))
        return results

    async def compression(self, items: list[CompressionInput], answers: list[Answer]) -> list[ItemResult]:
        results = []
        for index, (item, answer) in enumerate(zip(items, answers)):
            task = f"{item.target_codec} {item.codec_mode} T={item.vmaf_threshold:g}"
            if item.codec_mode.upper() != "CRF":
                task += f" {item.target_bitrate:g} Mbps"
            if self.era == "old":
                task = f"T={item.vmaf_threshold:g} (Era A)"
            result = ItemResult(COMPRESSION_ROUTE, task, index, answer.seconds, answer.url)
            judge = functools.partial(judge_compression, item.reference, vmaf_threshold=item.vmaf_threshold,
                                      target_codec=item.target_codec, codec_mode=item.codec_mode,
                                      target_bitrate=item.target_bitrate, era=self.era, rng=self.rng)
            results.append(await self._score(result, answer.error, judge))
        return results

    async def _score(self, result: ItemResult, transport_error: str,
                     judge: Callable[[Path], Awaitable[Verdict]]) -> ItemResult:
        """Download the item's URL and judge it; a missing or bad URL scores 0 as at the validator."""
        if transport_error:
            result.error, result.url, result.predicted_score = transport_error, "", 0.0
            return result
        if len(result.url) < MIN_URL_LENGTH:
            result.error = "no URL returned for this item" if not result.url else f"invalid URL {result.url!r}"
            result.url, result.predicted_score = "", 0.0
            return result
        started = time.monotonic()
        destination = self.workdir / "downloads" / f"{result.route}-{result.index}.mp4"
        description = f"scoring {result.route} #{result.index}"
        try:
            await tracked(self.progress, description + " (download)", DOWNLOAD_TIMEOUT,
                          fetch(result.url, destination, max_bytes=MAX_DOWNLOAD_BYTES, timeout=DOWNLOAD_TIMEOUT,
                                policy=SourcePolicy(allow_loopback=True)))
        except MeshError as exc:
            result.gates, result.predicted_score = [Gate("download", False, str(exc))], 0.0
            result.scoring_seconds = time.monotonic() - started
            return result
        try:
            verdict: Verdict = await tracked(self.progress, description + " (gates, VMAF)", None,
                                             judge(destination))
        except FfmpegError as exc:
            result.gates, result.predicted_score = [Gate("vmaf", False, f"VMAF error: {exc}"[:300])], 0.0
        else:
            result.gates, result.vmaf, result.vmaf_neg = verdict.gates, verdict.vmaf, verdict.vmaf_neg
            result.ratio, result.predicted_score = verdict.ratio, verdict.score
            result.details, result.notes = verdict.details, verdict.notes
        result.scoring_seconds = time.monotonic() - started
        return result


def flag_duplicate_urls(results: list[ItemResult]) -> None:
    """The validator zeroes items of one query that share a URL (spec §2.4)."""
    for route in {r.route for r in results}:
        urls = [r.url for r in results if r.route == route and r.url]
        for result in results:
            if result.route == route and result.url:
                unique = urls.count(result.url) == 1
                result.gates.append(Gate("unique_url", unique, "unique" if unique else "URL returned twice"))
                if not unique:
                    result.predicted_score = 0.0
