"""The gRPC requests the gateway sends for each work item, built from the synapse's items.

Kept apart from the fan-out so the mapping from the subnet's vocabulary (task types, codec names and
aliases, codec modes) to the services' contracts can be read, and changed with a contract, on its own.
An item that cannot become a valid request raises InvalidItem and is never sent.
"""

from __future__ import annotations

from mesh.codecs import CODEC_ALIASES, TASK_SCALES
from mesh.rpc import CODEC_ENUMS, CODEC_MODE_ENUMS, PRIORITY_ENUMS, TASK_TYPE_ENUMS
from mesh.v1 import common_pb2, compressor_pb2, upscaler_pb2
from miner_gateway.items import CompressItem, UpscaleItem


class InvalidItem(ValueError):
    """The item cannot be turned into a request (not an http(s) URL, unknown codec, ...)."""


def _codec_enum(codec: str) -> int | None:
    """The proto enum of a codec name or alias (mesh.codecs), None for an unknown one."""
    name = codec.strip().lower()
    return CODEC_ENUMS.get(CODEC_ALIASES.get(name, name))


def _check_source(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise InvalidItem(f"source URL must be http(s), got {url[:60]!r}")


def upscale_request(item: UpscaleItem, codec: str, model: str, job_id: str, batch: common_pb2.Batch,
                    priority: str) -> upscaler_pb2.UpscaleRequest:
    """Unknown task types are sent with scale 2, as the subnet's miner does (4 only for SD24K)."""
    _check_source(item.source_url)
    task_type = item.task_type.upper()
    return upscaler_pb2.UpscaleRequest(
        source_url=item.source_url,
        task_type=TASK_TYPE_ENUMS.get(task_type, upscaler_pb2.UPSCALE_TASK_TYPE_UNSPECIFIED),
        scale=TASK_SCALES.get(task_type, 2),
        codec=_codec_enum(codec),
        model=model,
        job_id=job_id,
        batch=batch,
        priority=PRIORITY_ENUMS[priority],
    )


def compress_request(item: CompressItem, job_id: str, batch: common_pb2.Batch, priority: str,
                     operator_seed: str) -> compressor_pb2.CompressRequest:
    """`operator_seed` (the miner's hotkey) sets the compressor's per-miner operating point."""
    _check_source(item.source_url)
    codec = _codec_enum(item.target_codec)
    if codec is None:
        raise InvalidItem(f"unknown target codec {item.target_codec[:20]!r}")
    mode = CODEC_MODE_ENUMS.get(item.codec_mode.strip().upper())
    if mode is None:
        raise InvalidItem(f"unknown codec mode {item.codec_mode[:20]!r}")
    if not 0.0 <= item.vmaf_threshold <= 100.0:
        raise InvalidItem(f"VMAF threshold {item.vmaf_threshold} is outside [0, 100]")
    if mode != compressor_pb2.CODEC_MODE_CRF and item.target_bitrate_mbps <= 0:
        raise InvalidItem(f"{item.codec_mode} needs a positive target bitrate")
    return compressor_pb2.CompressRequest(
        source_url=item.source_url,
        vmaf_threshold=item.vmaf_threshold,
        target_codec=codec,
        codec_mode=mode,
        target_bitrate_mbps=item.target_bitrate_mbps,
        job_id=job_id,
        batch=batch,
        priority=PRIORITY_ENUMS[priority],
        operator_seed=operator_seed,
    )
