"""A synapse payload as a list of independent work items, one per video (spec §1.2, §2.2).

Per-item values come from the list fields; where a list is empty (or shorter than the URL list) the scalar
applies, except `task_types`, which is padded with its last value as the subnet's miner does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from miner_gateway.protocol import CompressionMinerPayload, UpscalingMinerPayload

T = TypeVar("T")

DEFAULT_TASK_TYPE = "HD24K"


@dataclass(frozen=True)
class UpscaleItem:
    index: int
    source_url: str
    task_type: str


@dataclass(frozen=True)
class CompressItem:
    index: int
    source_url: str
    vmaf_threshold: float
    target_codec: str
    codec_mode: str
    target_bitrate_mbps: float


def _source_urls(payload: UpscalingMinerPayload | CompressionMinerPayload) -> list[str]:
    if payload.reference_video_urls:
        return list(payload.reference_video_urls)
    return [payload.reference_video_url] if payload.reference_video_url else []


def _per_item(values: Sequence[T], index: int, scalar: T) -> T:
    return values[index] if index < len(values) else scalar


def upscale_items(payload: UpscalingMinerPayload) -> list[UpscaleItem]:
    urls = _source_urls(payload)
    task_types = list(payload.task_types) or [payload.task_type or DEFAULT_TASK_TYPE]
    return [
        UpscaleItem(index, url, task_types[min(index, len(task_types) - 1)] or DEFAULT_TASK_TYPE)
        for index, url in enumerate(urls)
    ]


def compress_items(payload: CompressionMinerPayload) -> list[CompressItem]:
    return [
        CompressItem(
            index=index,
            source_url=url,
            vmaf_threshold=_per_item(payload.vmaf_thresholds, index, payload.vmaf_threshold),
            target_codec=_per_item(payload.target_codecs, index, payload.target_codec),
            codec_mode=_per_item(payload.codec_modes, index, payload.codec_mode),
            target_bitrate_mbps=_per_item(payload.target_bitrates, index, payload.target_bitrate),
        )
        for index, url in enumerate(_source_urls(payload))
    ]
