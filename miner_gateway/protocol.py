"""The subnet's synapses, wire-compatible with `vidaio_subnet_core/protocol.py` (spec §1).

The axon routes by class name and the validator parses our replies with its own classes, so class names,
field names, types and defaults here must match the subnet's exactly. The payload and response models keep a
list field and its legacy scalar in sync (first element <-> scalar), so an Era A single-video request and a
current 5-video request both parse, and a reply is readable by both eras.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from enum import Enum, IntEnum
from typing import Any, ClassVar

import bittensor
from pydantic import BaseModel, Field, field_serializer, field_validator, model_validator


class Synapse(bittensor.Synapse):
    """bittensor's Synapse with its required-field list computed once per class: bittensor rebuilds the
    class's whole JSON schema for every message it serialises (about a fifth of the gateway's CPU per
    synapse, profiled). Adds no field, so the wire format is the subnet's."""

    def get_required_fields(self) -> list[str]:
        return list(_required_fields(type(self)))


@functools.cache
def _required_fields(synapse_class: type[bittensor.Synapse]) -> tuple[str, ...]:
    return tuple(synapse_class.model_json_schema().get("required", []))


class Version(BaseModel):
    major: int
    minor: int
    patch: int


class ContentLength(IntEnum):
    """Longest clip (seconds) a miner accepts; the validator sends every miner the shortest answer."""

    FIVE = 5
    TEN = 10


class TaskType(IntEnum):
    COMPRESSION = 1
    UPSCALING = 2


class _ListScalarSynced(BaseModel):
    """Keeps each (list, scalar) pair in sync the way the subnet's models do.

    Before validation: an empty list is filled from the scalar, and an empty scalar from the list's first
    element. After validation: the same, so the scalar always equals the first element when the list has one.
    """

    synced_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _fill_from_counterpart(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for list_name, scalar_name in cls.synced_pairs:
            values, scalar = data.get(list_name), data.get(scalar_name)
            if not values and scalar:
                data[list_name] = [scalar]
            elif not scalar and isinstance(values, (list, tuple)) and values:
                data[scalar_name] = values[0]
        return data

    @model_validator(mode="after")
    def _scalar_follows_list(self) -> _ListScalarSynced:
        for list_name, scalar_name in self.synced_pairs:
            values, scalar = getattr(self, list_name), getattr(self, scalar_name)
            if not values and scalar:
                setattr(self, list_name, [scalar])
            elif values:
                setattr(self, scalar_name, values[0])
        return self


class UpscalingMinerPayload(_ListScalarSynced):
    synced_pairs = (("reference_video_urls", "reference_video_url"), ("task_types", "task_type"))

    reference_video_urls: list[str] = Field(default_factory=list, description="videos to upscale")
    reference_video_url: str = Field("", description="legacy scalar: the first video")
    maximum_optimized_size_mb: int = Field(100, gt=0, description="sent by validators, never read by them")
    task_types: list[str] = Field(default_factory=list, description="HD24K, SD2HD, SD24K, 4K28K per video")
    task_type: str = Field("HD24K", description="legacy scalar: the first video's task type")


class CompressionMinerPayload(_ListScalarSynced):
    """Only the URL pair is synced; an empty per-item list means the scalar applies to every item."""

    synced_pairs = (("reference_video_urls", "reference_video_url"),)

    reference_video_urls: list[str] = Field(default_factory=list, description="videos to compress")
    reference_video_url: str = Field("", description="legacy scalar: the first video")
    vmaf_threshold: float = Field(90.0, ge=0.0, le=100.0)
    vmaf_thresholds: list[float] = Field(default_factory=list)
    target_codec: str = Field("av1", description="av1, hevc, h264, vp9")
    target_codecs: list[str] = Field(default_factory=list)
    codec_mode: str = Field("CRF", description="CBR, VBR or CRF")
    codec_modes: list[str] = Field(default_factory=list)
    target_bitrate: float = Field(10.0, gt=0.0, description="Mbit/s")
    target_bitrates: list[float] = Field(default_factory=list)


class MinerResponse(_ListScalarSynced):
    """One URL per input, in order, "" for a failed item; the scalar is the first entry."""

    synced_pairs = (("optimized_video_urls", "optimized_video_url"),)

    optimized_video_urls: list[str] = Field(default_factory=list)
    optimized_video_url: str = ""


class JobKickoffResponse(BaseModel):
    accepted: bool = False


class PollResponse(_ListScalarSynced):
    """`status`: "processing", "completed" (URLs filled) or "failed"; validators act on the exact strings."""

    synced_pairs = (("optimized_video_urls", "optimized_video_url"),)

    job_id: str = ""
    status: str = "unknown"
    optimized_video_urls: list[str] = Field(default_factory=list)
    optimized_video_url: str = ""


class TaskWarrantProtocol(Synapse):
    version: Version | None = None
    warrant_task: TaskType | None = Field(
        None, description="the task this miner takes: COMPRESSION or UPSCALING"
    )


class LengthCheckProtocol(Synapse):
    version: Version | None = None
    max_content_length: ContentLength = Field(
        ContentLength.FIVE, description="longest clip accepted, seconds"
    )


class VideoUpscalingProtocol(Synapse):
    version: Version | None = None
    round_id: str | None = None
    miner_payload: UpscalingMinerPayload = Field(default_factory=UpscalingMinerPayload, frozen=True)
    miner_response: MinerResponse = Field(default_factory=MinerResponse)


class VideoCompressionProtocol(Synapse):
    version: Version | None = None
    round_id: str | None = None
    miner_payload: CompressionMinerPayload = Field(default_factory=CompressionMinerPayload, frozen=True)
    miner_response: MinerResponse = Field(default_factory=MinerResponse)


class VideoUpscalingJobProtocol(Synapse):
    """Organic kick-off: the validator assigns `job_id` (a UUID4) and polls for the result."""

    job_id: str = ""
    miner_payload: UpscalingMinerPayload = Field(default_factory=UpscalingMinerPayload, frozen=True)
    job_response: JobKickoffResponse = Field(default_factory=JobKickoffResponse)
    miner_response: MinerResponse = Field(
        default_factory=MinerResponse, description="filled by the validator"
    )


class VideoUpscalingPollProtocol(Synapse):
    job_id: str = ""
    poll_response: PollResponse = Field(default_factory=PollResponse)


class VideoCompressionJobProtocol(Synapse):
    job_id: str = ""
    miner_payload: CompressionMinerPayload = Field(default_factory=CompressionMinerPayload, frozen=True)
    job_response: JobKickoffResponse = Field(default_factory=JobKickoffResponse)
    miner_response: MinerResponse = Field(
        default_factory=MinerResponse, description="filled by the validator"
    )


class VideoCompressionPollProtocol(Synapse):
    job_id: str = ""
    poll_response: PollResponse = Field(default_factory=PollResponse)


# Competitions (HEAD, compression only). What this miner answers is decided in miner_gateway/competition.py.


class CompetitionType(str, Enum):
    COMPRESSION = "COMPRESSION"


class CompetitionSubmissionStatus(str, Enum):
    NOT_READY = "NOT_READY"
    READY = "READY"
    WITHDRAWN = "WITHDRAWN"


class CompetitionSubmissionReviewStatus(str, Enum):
    NOT_RECEIVED = "NOT_RECEIVED"
    ACCEPTED = "ACCEPTED"
    REVIEW_REQUIRED = "REVIEW_REQUIRED"
    REJECTED = "REJECTED"


_COMPETITION_ID = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_DIGEST = r"^[a-f0-9]{64}$"
GITHUB_REPOSITORY_URL = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\.git$")
_TRANSPORT_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A submission poll is fresh from 30 s in the future to 5 min in the past (the subnet's window).
_POLL_MAX_AGE = timedelta(minutes=5)
_POLL_FUTURE_TOLERANCE = timedelta(seconds=30)


class CompetitionInvitationResponse(BaseModel):
    competition_id: str = ""
    echo_nonce: str = ""
    participating: bool = False
    supported_competition_type: CompetitionType | None = None
    refusal_reason: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _participation_is_consistent(self) -> CompetitionInvitationResponse:
        if self.participating and self.supported_competition_type != CompetitionType.COMPRESSION:
            raise ValueError("participating miners must confirm COMPRESSION support")
        if self.participating and self.refusal_reason:
            raise ValueError("a participating miner cannot give a refusal reason")
        return self


class CompetitionSubmissionResponse(BaseModel):
    competition_id: str = ""
    echo_nonce: str = ""
    status: CompetitionSubmissionStatus = CompetitionSubmissionStatus.NOT_READY
    repository_url: str = ""
    github_pat: str = Field("", repr=False)
    commit_hint: str | None = Field(None, max_length=64)
    reason: str | None = Field(None, max_length=256)

    @field_validator("repository_url")
    @classmethod
    def _github_https_url(cls, value: str) -> str:
        if value and not GITHUB_REPOSITORY_URL.fullmatch(value):
            raise ValueError("repository_url must be a GitHub HTTPS .git URL")
        return value

    @model_validator(mode="after")
    def _credentials_only_when_ready(self) -> CompetitionSubmissionResponse:
        ready = self.status == CompetitionSubmissionStatus.READY
        if ready and not (self.repository_url and self.github_pat):
            raise ValueError("READY submissions require repository_url and github_pat")
        if not ready and (self.repository_url or self.github_pat):
            raise ValueError("non-ready submissions cannot include repository credentials")
        return self


class CompetitionInvitationProtocol(Synapse):
    protocol_version: int = Field(2, ge=2)
    competition_id: str = Field("", pattern=_COMPETITION_ID)
    competition_type: CompetitionType = CompetitionType.COMPRESSION
    manifest_digest: str = Field("", pattern=_DIGEST)
    registration_deadline: datetime = _TRANSPORT_EPOCH
    invitation_nonce: str = Field("", min_length=16, max_length=128)
    eligibility_reason_code: str | None = Field(None, max_length=128)
    eligibility_reason_detail: str | None = Field(None, max_length=500)
    observed_alpha_stake: float | None = Field(None, ge=0, allow_inf_nan=False)
    minimum_alpha_stake: float = Field(0.0, ge=0, allow_inf_nan=False)
    invitation_response: CompetitionInvitationResponse = Field(default_factory=CompetitionInvitationResponse)

    @field_serializer("registration_deadline")
    def _deadline_as_text(self, value: datetime) -> str:
        return value.isoformat()

    @model_validator(mode="after")
    def _response_matches_request(self) -> CompetitionInvitationProtocol:
        response = self.invitation_response
        if response.competition_id and response.competition_id != self.competition_id:
            raise ValueError("invitation response belongs to another competition")
        if response.echo_nonce and response.echo_nonce != self.invitation_nonce:
            raise ValueError("invitation response nonce does not match the request")
        if self.registration_deadline.tzinfo is None:
            raise ValueError("registration_deadline must be timezone-aware")
        return self

    def is_open_invitation(self, now: datetime) -> bool:
        """A real invitation (not the transport defaults) whose registration deadline has not passed."""
        if now.utcoffset() is None:
            return False
        filled = bool(self.competition_id and self.manifest_digest and self.invitation_nonce)
        return filled and now <= self.registration_deadline


class CompetitionSubmissionProtocol(Synapse):
    protocol_version: int = Field(3, ge=2)
    competition_id: str = Field("", pattern=_COMPETITION_ID)
    manifest_digest: str = Field("", pattern=_DIGEST)
    request_nonce: str = Field("", min_length=16, max_length=128)
    requested_at: datetime = _TRANSPORT_EPOCH
    last_submission_status: CompetitionSubmissionReviewStatus = CompetitionSubmissionReviewStatus.NOT_RECEIVED
    last_submission_reason_code: str | None = Field(None, max_length=128)
    last_submission_reason_detail: str | None = Field(None, max_length=500)
    last_pinned_commit_sha: str | None = Field(None, pattern=r"^[a-f0-9]{40,64}$")
    submission_revision: int = Field(0, ge=0)
    submission_response: CompetitionSubmissionResponse = Field(default_factory=CompetitionSubmissionResponse)

    @field_serializer("requested_at")
    def _requested_at_as_text(self, value: datetime) -> str:
        return value.isoformat()

    @model_validator(mode="after")
    def _response_matches_request(self) -> CompetitionSubmissionProtocol:
        response = self.submission_response
        if response.competition_id and response.competition_id != self.competition_id:
            raise ValueError("submission response belongs to another competition")
        if response.echo_nonce and response.echo_nonce != self.request_nonce:
            raise ValueError("submission response nonce does not match the request")
        if self.requested_at.tzinfo is None:
            raise ValueError("requested_at must be timezone-aware")
        return self

    def is_fresh_request(self, now: datetime) -> bool:
        """A real poll (not the transport defaults) sent within the subnet's freshness window of `now`."""
        if now.utcoffset() is None:
            return False
        filled = bool(self.competition_id and self.manifest_digest and self.request_nonce)
        return filled and -_POLL_FUTURE_TOLERANCE <= now - self.requested_at <= _POLL_MAX_AGE


ROUTES: tuple[type[Synapse], ...] = (
    TaskWarrantProtocol,
    LengthCheckProtocol,
    VideoUpscalingProtocol,
    VideoCompressionProtocol,
    VideoUpscalingJobProtocol,
    VideoUpscalingPollProtocol,
    VideoCompressionJobProtocol,
    VideoCompressionPollProtocol,
    CompetitionInvitationProtocol,
    CompetitionSubmissionProtocol,
)
