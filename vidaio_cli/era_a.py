"""The Era A (vidaio-subnet `4f7579a`) request shapes, for `--era old`: one video per synapse, no list
fields and no codec fields, exactly what an old validator puts on the wire.

The class names are the routes, so they equal the current ones; replies are parsed with these models too,
which ignore the list fields a current miner adds, as an old validator's models did (spec §1.1).
"""

from __future__ import annotations

from bittensor import Synapse
from pydantic import BaseModel, Field

from miner_gateway.protocol import Version


class UpscalingMinerPayload(BaseModel):
    reference_video_url: str = Field("", min_length=1)
    maximum_optimized_size_mb: int = Field(100, gt=0)
    task_type: str = "HD24K"


class CompressionMinerPayload(BaseModel):
    reference_video_url: str = Field("", min_length=1)
    vmaf_threshold: float = Field(90.0, ge=0.0, le=100.0)


class MinerResponse(BaseModel):
    optimized_video_url: str = ""


class VideoUpscalingProtocol(Synapse):
    version: Version | None = None
    round_id: str | None = None
    miner_payload: UpscalingMinerPayload = Field(frozen=True)
    miner_response: MinerResponse = Field(default_factory=MinerResponse)


class VideoCompressionProtocol(Synapse):
    version: Version | None = None
    round_id: str | None = None
    miner_payload: CompressionMinerPayload = Field(frozen=True)
    miner_response: MinerResponse = Field(default_factory=MinerResponse)
