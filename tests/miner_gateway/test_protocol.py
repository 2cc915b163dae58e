"""Wire compatibility of the synapse classes, and payloads turned into work items (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import bittensor
import pytest
from pydantic import ValidationError

from miner_gateway import protocol
from miner_gateway.items import compress_items, upscale_items
from miner_gateway.protocol import (
    CompetitionInvitationProtocol,
    CompetitionInvitationResponse,
    CompetitionSubmissionProtocol,
    CompetitionSubmissionResponse,
    CompressionMinerPayload,
    ContentLength,
    LengthCheckProtocol,
    MinerResponse,
    PollResponse,
    TaskType,
    TaskWarrantProtocol,
    UpscalingMinerPayload,
    VideoCompressionJobProtocol,
    VideoCompressionProtocol,
    VideoUpscalingJobProtocol,
    VideoUpscalingPollProtocol,
    VideoUpscalingProtocol,
)
from tests.miner_gateway.conftest import load_fixture

SUBNET_ROUTES = {
    "TaskWarrantProtocol",
    "LengthCheckProtocol",
    "VideoUpscalingProtocol",
    "VideoCompressionProtocol",
    "VideoUpscalingJobProtocol",
    "VideoUpscalingPollProtocol",
    "VideoCompressionJobProtocol",
    "VideoCompressionPollProtocol",
    "CompetitionInvitationProtocol",
    "CompetitionSubmissionProtocol",
}


def test_route_names_are_the_subnet_class_names() -> None:
    assert {cls.__name__ for cls in protocol.ROUTES} == SUBNET_ROUTES


@pytest.mark.parametrize("synapse_class", protocol.ROUTES, ids=lambda cls: cls.__name__)
def test_cached_required_fields_and_headers_equal_bittensors_own(synapse_class) -> None:
    synapse = synapse_class()
    uncached = bittensor.Synapse.get_required_fields(synapse)
    assert synapse.get_required_fields() == uncached
    assert synapse.get_required_fields() is not synapse.get_required_fields(), "callers get their own list"
    with mock.patch.object(protocol.Synapse, "get_required_fields", bittensor.Synapse.get_required_fields):
        reference_headers = synapse_class().to_headers()
    assert synapse_class().to_headers() == reference_headers


def test_era_a_upscaling_body_becomes_one_item_with_synced_lists() -> None:
    body = load_fixture("era_a_upscaling.json")
    synapse = VideoUpscalingProtocol(**body)
    payload = synapse.miner_payload
    assert payload.reference_video_urls == [body["miner_payload"]["reference_video_url"]]
    assert payload.task_types == ["SD24K"]
    assert upscale_items(payload) == [
        upscale_items(
            UpscalingMinerPayload(reference_video_url=payload.reference_video_url, task_type="SD24K")
        )[0]
    ]
    assert synapse.version.minor == 1 and synapse.round_id == body["round_id"]


def test_head_upscaling_body_becomes_five_items() -> None:
    body = load_fixture("head_upscaling.json")
    items = upscale_items(VideoUpscalingProtocol(**body).miner_payload)
    assert [item.source_url for item in items] == body["miner_payload"]["reference_video_urls"]
    assert [item.index for item in items] == [0, 1, 2, 3, 4]
    assert {item.task_type for item in items} == {"SD24K"}


def test_task_types_short_list_is_padded_with_its_last_value_and_defaults_to_hd24k() -> None:
    urls = [f"https://v.test/{n}.mp4" for n in range(4)]
    padded = upscale_items(UpscalingMinerPayload(reference_video_urls=urls, task_types=["SD24K", "SD2HD"]))
    assert [item.task_type for item in padded] == ["SD24K", "SD2HD", "SD2HD", "SD2HD"]
    default = upscale_items(UpscalingMinerPayload(reference_video_urls=urls[:2]))
    assert [item.task_type for item in default] == ["HD24K", "HD24K"]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("era_a_compression.json", [(90.0, "av1", "CRF", 10.0)]),
        ("transition_compression.json", [(89.0, "hevc", "VBR", 8.0)]),
        (
            "head_compression.json",
            [
                (85.0, "av1", "CRF", 10.0),
                (89.0, "hevc", "VBR", 5.0),
                (93.0, "av1", "VBR", 8.0),
                (89.0, "hevc", "CRF", 10.0),
                (85.0, "av1", "CRF", 10.0),
            ],
        ),
    ],
)
def test_compression_bodies_of_every_era_give_per_item_settings(fixture: str, expected: list) -> None:
    body = load_fixture(fixture)
    items = compress_items(VideoCompressionProtocol(**body).miner_payload)
    assert [
        (i.vmaf_threshold, i.target_codec, i.codec_mode, i.target_bitrate_mbps) for i in items
    ] == expected
    assert items[0].source_url == body["miner_payload"].get("reference_video_url")


def test_empty_or_short_compression_lists_fall_back_to_the_scalar() -> None:
    payload = CompressionMinerPayload(
        reference_video_urls=["https://v.test/a", "https://v.test/b", "https://v.test/c"],
        vmaf_thresholds=[85.0],
        target_codec="hevc",
        codec_mode="VBR",
        target_bitrate=5.0,
        vmaf_threshold=93.0,
    )
    items = compress_items(payload)
    assert [item.vmaf_threshold for item in items] == [85.0, 93.0, 93.0]
    assert {(item.target_codec, item.codec_mode, item.target_bitrate_mbps) for item in items} == {
        ("hevc", "VBR", 5.0)
    }


def test_payload_without_any_url_has_no_items() -> None:
    assert upscale_items(UpscalingMinerPayload()) == []
    assert compress_items(CompressionMinerPayload()) == []


def test_miner_payload_is_frozen() -> None:
    synapse = VideoUpscalingProtocol(**load_fixture("head_upscaling.json"))
    with pytest.raises(ValidationError):
        synapse.miner_payload = UpscalingMinerPayload()


def test_response_scalar_is_the_first_aligned_url_and_era_a_replies_parse() -> None:
    response = MinerResponse(optimized_video_urls=["", "https://r.test/2.mp4"])
    assert response.optimized_video_url == ""
    assert (
        MinerResponse(optimized_video_urls=["https://r.test/1.mp4", ""]).optimized_video_url
        == "https://r.test/1.mp4"
    )
    assert MinerResponse(**{"optimized_video_url": "https://r.test/x.mp4"}).optimized_video_urls == [
        "https://r.test/x.mp4"
    ]
    poll = PollResponse(job_id="j", status="completed", optimized_video_urls=["https://r.test/1.mp4"])
    assert poll.optimized_video_url == "https://r.test/1.mp4" and PollResponse().status == "unknown"


def test_enums_travel_as_integers() -> None:
    warrant = json.loads(TaskWarrantProtocol(warrant_task=TaskType.COMPRESSION).model_dump_json())
    length = json.loads(LengthCheckProtocol(max_content_length=ContentLength.TEN).model_dump_json())
    assert warrant["warrant_task"] == 1 and length["max_content_length"] == 10
    assert TaskWarrantProtocol(**load_fixture("head_task_warrant.json")).warrant_task is None
    assert TaskWarrantProtocol(**load_fixture("era_a_task_warrant.json")).warrant_task is TaskType.UPSCALING


def test_job_and_poll_bodies_parse() -> None:
    upscaling = VideoUpscalingJobProtocol(**load_fixture("upscaling_job.json"))
    compression = VideoCompressionJobProtocol(**load_fixture("compression_job.json"))
    poll = VideoUpscalingPollProtocol(**load_fixture("poll.json"))
    assert upscaling.job_response.accepted is False and upscaling.miner_payload.task_type == "SD2HD"
    assert compress_items(compression.miner_payload)[0].target_codec == "hevc"
    assert poll.job_id == upscaling.job_id


def test_competition_bodies_parse_and_a_refusal_is_a_valid_reply() -> None:
    invitation = CompetitionInvitationProtocol(**load_fixture("competition_invitation.json"))
    assert invitation.observed_alpha_stake == 9 and invitation.registration_deadline.tzinfo is not None
    invitation.invitation_response = CompetitionInvitationResponse(
        competition_id=invitation.competition_id, echo_nonce=invitation.invitation_nonce, refusal_reason="no"
    )
    assert json.loads(invitation.model_dump_json())["registration_deadline"] == "2026-08-25T00:00:00+00:00"
    submission = CompetitionSubmissionProtocol(**load_fixture("competition_submission.json"))
    assert submission.submission_response.status.value == "NOT_READY"


def test_competition_reply_for_another_competition_is_rejected() -> None:
    invitation = CompetitionInvitationProtocol(**load_fixture("competition_invitation.json"))
    with pytest.raises(ValidationError):
        invitation.invitation_response = CompetitionInvitationResponse(competition_id="other-one")
    with pytest.raises(ValidationError):
        CompetitionInvitationResponse(participating=True)


def test_competition_fields_keep_the_subnets_defaults_and_limits() -> None:
    """Spec §1.2/§1.3: what the owner's validator may send parses here, and what it would refuse is refused."""
    invitation, submission = CompetitionInvitationProtocol(), CompetitionSubmissionProtocol()
    assert (invitation.protocol_version, submission.protocol_version) == (2, 3)
    assert invitation.minimum_alpha_stake == 0.0 and invitation.observed_alpha_stake is None
    assert invitation.registration_deadline == submission.requested_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert submission.last_submission_status.value == "NOT_RECEIVED" and submission.submission_revision == 0
    for bad in (
        {"eligibility_reason_code": "X" * 129},
        {"eligibility_reason_detail": "x" * 501},
        {"observed_alpha_stake": -1.0},
        {"observed_alpha_stake": float("inf")},
        {"minimum_alpha_stake": -1.0},
        {"competition_id": "Upper-Case"},
        {"invitation_nonce": "short"},
    ):
        with pytest.raises(ValidationError):
            CompetitionInvitationProtocol(**bad)
    for bad in ({"last_pinned_commit_sha": "abc"}, {"submission_revision": -1}, {"manifest_digest": "f" * 63}):
        with pytest.raises(ValidationError):
            CompetitionSubmissionProtocol(**bad)


def test_submission_reply_rules_match_the_subnets_model() -> None:
    ready = {"status": "READY", "repository_url": "https://github.com/a-b/c.d_e.git", "github_pat": "tok"}
    assert "tok" not in repr(CompetitionSubmissionResponse(**ready))
    for bad in (
        {**ready, "github_pat": ""},
        {**ready, "repository_url": ""},
        {**ready, "repository_url": "https://github.com/a/c"},
        {**ready, "repository_url": "https://x:tok@github.com/a/c.git"},
        {"status": "NOT_READY", "repository_url": ready["repository_url"]},
        {"status": "WITHDRAWN", "github_pat": "tok"},
        {"reason": "r" * 257},
    ):
        with pytest.raises(ValidationError):
            CompetitionSubmissionResponse(**bad)


def test_invitation_window_and_poll_freshness_follow_the_subnet() -> None:
    now = datetime(2026, 9, 1, 12, tzinfo=UTC)
    filled = {"competition_id": "comp-01", "manifest_digest": "a" * 64}
    invitation = CompetitionInvitationProtocol(
        **filled, invitation_nonce="n" * 32, registration_deadline=now
    )
    assert invitation.is_open_invitation(now)
    assert not invitation.is_open_invitation(now + timedelta(microseconds=1))
    assert not invitation.is_open_invitation(now.replace(tzinfo=None))
    assert not CompetitionInvitationProtocol(registration_deadline=now).is_open_invitation(now - timedelta(1))
    for age, fresh in ((timedelta(minutes=5), True), (timedelta(minutes=5, seconds=1), False),
                       (timedelta(seconds=-30), True), (timedelta(seconds=-31), False)):
        poll = CompetitionSubmissionProtocol(**filled, request_nonce="n" * 32, requested_at=now - age)
        assert poll.is_fresh_request(now) is fresh, age
    assert not CompetitionSubmissionProtocol(requested_at=now).is_fresh_request(now)
