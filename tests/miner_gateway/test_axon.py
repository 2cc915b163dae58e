"""End to end: a real bittensor Dendrite signing as a validator, the gateway's real Axon on loopback, and
scripted gRPC backends. The chain is the only fake (a small metagraph object)."""

from __future__ import annotations

import asyncio
import logging
import time

import bittensor
import pytest
import redis
from opentelemetry.trace import SpanKind

from mesh.embedded import EmbeddedValkey, free_port
from miner_gateway.config import GatewaySettings
from miner_gateway.handlers import JOB_REFUSED, JOB_STATUS_UNKNOWN
from miner_gateway.jobs import JobRunner
from miner_gateway.protocol import (
    CompetitionInvitationProtocol,
    CompetitionSubmissionProtocol,
    CompressionMinerPayload,
    ContentLength,
    LengthCheckProtocol,
    TaskType,
    TaskWarrantProtocol,
    UpscalingMinerPayload,
    VideoCompressionJobProtocol,
    VideoCompressionPollProtocol,
    VideoCompressionProtocol,
    VideoUpscalingJobProtocol,
    VideoUpscalingPollProtocol,
    VideoUpscalingProtocol,
)
from miner_gateway.server import Gateway
from tests.miner_gateway.conftest import FakeSubtensor, call, load_fixture, post_raw
from tests.miner_gateway.scripted import result_url

ROUTE_FIXTURES = [
    (TaskWarrantProtocol, "era_a_task_warrant.json"),
    (TaskWarrantProtocol, "head_task_warrant.json"),
    (LengthCheckProtocol, "length_check.json"),
    (VideoUpscalingProtocol, "era_a_upscaling.json"),
    (VideoUpscalingProtocol, "head_upscaling.json"),
    (VideoCompressionProtocol, "era_a_compression.json"),
    (VideoCompressionProtocol, "transition_compression.json"),
    (VideoCompressionProtocol, "head_compression.json"),
    (VideoUpscalingJobProtocol, "upscaling_job.json"),
    (VideoCompressionJobProtocol, "compression_job.json"),
    (VideoUpscalingPollProtocol, "poll.json"),
    (VideoCompressionPollProtocol, "poll.json"),
    (CompetitionInvitationProtocol, "competition_invitation.json"),
    (CompetitionSubmissionProtocol, "competition_submission.json"),
]


COMPETITION_ROUTES = (CompetitionInvitationProtocol, CompetitionSubmissionProtocol)


def urls(*behaviours: str) -> list[str]:
    return [f"https://v.test/{behaviour}/{index}.mp4" for index, behaviour in enumerate(behaviours)]


def produced(response: bittensor.Synapse) -> list[str]:
    """The job ids behind the result URLs (the gateway picks a fresh id per synapse)."""
    return [
        url.rsplit("/", 1)[-1].removesuffix(".mp4") for url in response.miner_response.optimized_video_urls
    ]


@pytest.mark.parametrize(
    ("synapse_class", "fixture"),
    ROUTE_FIXTURES,
    ids=[f"{cls.__name__}-{name.removesuffix('.json')}" for cls, name in ROUTE_FIXTURES],
)
async def test_every_route_answers_request_bodies_of_every_era(
    gateway, dendrite, owner_dendrite, synapse_class, fixture
) -> None:
    caller = owner_dendrite if synapse_class in COMPETITION_ROUTES else dendrite
    response = await post_raw(caller, gateway, synapse_class, load_fixture(fixture))
    assert response.status_code == 200, response.text
    answered = synapse_class(**response.json())
    body = load_fixture(fixture)
    if synapse_class is TaskWarrantProtocol:
        assert answered.warrant_task is TaskType.UPSCALING
    elif synapse_class is LengthCheckProtocol:
        assert answered.max_content_length is ContentLength.FIVE
    elif synapse_class in (VideoUpscalingProtocol, VideoCompressionProtocol):
        inputs = body["miner_payload"].get("reference_video_urls") or [
            body["miner_payload"]["reference_video_url"]
        ]
        outputs = answered.miner_response.optimized_video_urls
        assert len(outputs) == len(inputs) and all(outputs)
        assert answered.miner_response.optimized_video_url == outputs[0]
    elif synapse_class in (VideoUpscalingJobProtocol, VideoCompressionJobProtocol):
        assert answered.job_response.accepted is True
    elif synapse_class in (VideoUpscalingPollProtocol, VideoCompressionPollProtocol):
        assert answered.poll_response.status in ("processing", "completed", "failed")
        assert answered.poll_response.job_id == body["job_id"]
    elif synapse_class is CompetitionInvitationProtocol:
        assert answered.invitation_response.participating is False
        assert answered.invitation_response.echo_nonce == body["invitation_nonce"]
    else:
        assert answered.submission_response.status.value == "NOT_READY"
        assert answered.submission_response.echo_nonce == body["request_nonce"]


async def test_era_a_reply_carries_the_scalar_an_era_a_validator_reads(gateway, dendrite, backend) -> None:
    response = await post_raw(dendrite, gateway, VideoUpscalingProtocol, load_fixture("era_a_upscaling.json"))
    reply = response.json()["miner_response"]
    assert reply["optimized_video_url"].startswith("https://results.test/")
    assert reply["optimized_video_urls"] == [reply["optimized_video_url"]]
    assert backend.script.requests[0].scale == 4, "Era A SD24K scales by 4"


async def test_warrant_and_content_length_come_from_configuration(gateway_factory, dendrite) -> None:
    gateway = await gateway_factory(warrant_task="COMPRESSION", max_content_length=10)
    assert (await call(dendrite, gateway, TaskWarrantProtocol())).warrant_task is TaskType.COMPRESSION
    assert (await call(dendrite, gateway, LengthCheckProtocol())).max_content_length is ContentLength.TEN


async def test_urls_stay_aligned_when_one_item_fails(gateway, dendrite) -> None:
    synapse = VideoUpscalingProtocol(
        round_id="r1",
        miner_payload=UpscalingMinerPayload(
            reference_video_urls=urls("ok", "slow", "fail", "ok", "ok"), task_types=["SD24K"] * 5
        ),
    )
    response = await call(dendrite, gateway, synapse)
    assert response.dendrite.status_code == 200
    outputs = response.miner_response.optimized_video_urls
    assert [bool(url) for url in outputs] == [True, True, False, True, True]
    assert [job.rsplit("-", 1)[1] for job in produced(response) if job] == ["0", "1", "3", "4"]
    assert response.miner_response.optimized_video_url == outputs[0]


async def test_compression_synapse_runs_every_item(gateway, dendrite, backend) -> None:
    synapse = VideoCompressionProtocol(
        miner_payload=CompressionMinerPayload(
            reference_video_urls=urls("ok", "fail", "ok"),
            target_codec="hevc",
            codec_mode="VBR",
            target_bitrate=5.0,
        )
    )
    response = await call(dendrite, gateway, synapse)
    assert [bool(url) for url in response.miner_response.optimized_video_urls] == [True, False, True]
    assert {request.target_bitrate_mbps for request in backend.script.requests} == {5.0}


@pytest.mark.parametrize(
    ("caller", "reason"),
    [
        ("stranger", "unknown hotkey"),
        ("registered_miner", "non-validator hotkey"),
    ],
)
async def test_blacklisted_hotkey_never_reaches_a_service(gateway, wallets, backend, caller, reason) -> None:
    outsider = bittensor.Dendrite(wallet=getattr(wallets, caller))
    try:
        for synapse in (
            VideoUpscalingProtocol(miner_payload=UpscalingMinerPayload(reference_video_urls=urls("ok"))),
            VideoCompressionJobProtocol(
                job_id="j1", miner_payload=CompressionMinerPayload(reference_video_urls=urls("ok"))
            ),
            TaskWarrantProtocol(),
        ):
            response = await call(outsider, gateway, synapse)
            assert response.dendrite.status_code == 403
            assert reason in response.dendrite.status_message
    finally:
        await outsider.aclose_session()
    assert backend.script.requests == []


async def test_minimum_stake_is_enforced_and_priority_is_stake(gateway_factory, wallets, backend) -> None:
    gateway = await gateway_factory(min_stake=100.0)
    poor = bittensor.Dendrite(wallet=wallets.poor_validator)
    try:
        response = await call(
            poor,
            gateway,
            VideoUpscalingProtocol(miner_payload=UpscalingMinerPayload(reference_video_urls=urls("ok"))),
        )
    finally:
        await poor.aclose_session()
    assert response.dendrite.status_code == 403 and "stake below" in response.dendrite.status_message
    assert backend.script.requests == []
    priority = gateway.axon.priority_fns["VideoUpscalingProtocol"]
    rich = VideoUpscalingProtocol(
        dendrite=bittensor.TerminalInfo(hotkey=wallets.validator.hotkey.ss58_address)
    )
    assert await priority(rich) == 5000.0


async def test_local_network_mode_uses_the_configured_validator_list(
    wallets, redis_url, backend, dendrite
) -> None:
    from mesh.embedded import free_port
    from miner_gateway.config import GatewaySettings
    from miner_gateway.server import Gateway

    settings = GatewaySettings(
        _env_file=None,
        host="127.0.0.1",
        port=0,
        axon_port=free_port(),
        network="local",
        validator_hotkeys=[wallets.validator.hotkey.ss58_address],
        upscaler_addrs=[backend.address],
        drain_seconds=0,
    )
    gateway = Gateway(settings, wallets.miner, redis_url=redis_url)
    await gateway.start()
    stranger = bittensor.Dendrite(wallet=wallets.second_validator)
    try:
        assert (await call(dendrite, gateway, TaskWarrantProtocol())).dendrite.status_code == 200
        assert (await call(stranger, gateway, TaskWarrantProtocol())).dendrite.status_code == 403
    finally:
        await stranger.aclose_session()
        await gateway.stop()


async def test_metagraph_resync_admits_a_newly_permitted_validator(
    gateway_factory, wallets, fake_metagraph
) -> None:
    gateway = await gateway_factory(metagraph_sync_seconds=0.2)
    newcomer = bittensor.Dendrite(wallet=wallets.second_validator)
    try:
        assert (await call(newcomer, gateway, TaskWarrantProtocol())).dendrite.status_code == 403
        fake_metagraph.register(wallets.second_validator.hotkey.ss58_address, True, 100.0)
        for _ in range(30):
            await asyncio.sleep(0.1)
            response = await call(newcomer, gateway, TaskWarrantProtocol())
            if response.dendrite.status_code == 200:
                break
    finally:
        await newcomer.aclose_session()
    assert response.dendrite.status_code == 200 and response.warrant_task is TaskType.UPSCALING


async def test_deadline_expiry_returns_empty_urls_in_time(gateway_factory, dendrite, backend) -> None:
    gateway = await gateway_factory(deadline_margin_seconds=1.0)
    synapse = VideoUpscalingProtocol(
        miner_payload=UpscalingMinerPayload(reference_video_urls=urls("hang", "ok"))
    )
    started = time.monotonic()
    response = await call(dendrite, gateway, synapse, timeout=3.0)
    elapsed = time.monotonic() - started
    assert response.dendrite.status_code == 200, response.dendrite.status_message
    assert response.miner_response.optimized_video_urls[0] == ""
    assert response.miner_response.optimized_video_urls[1].startswith("https://results.test/")
    for _ in range(50):
        if backend.script.cancelled:
            break
        await asyncio.sleep(0.02)
    assert backend.script.cancelled == 1, "the late call was cancelled, so the service stops its work"
    assert 1.9 < elapsed < 3.0, (
        "answered after the gRPC deadline (timeout - margin) and before the dendrite gave up"
    )


async def test_upscaling_job_is_accepted_polled_and_completed(gateway, dendrite, backend) -> None:
    job_id = "3d6f0c1e-8b2a-4f5d-9c7e-1a2b3c4d5e6f"
    payload = UpscalingMinerPayload(reference_video_urls=urls("ok", "hold"), task_types=["SD2HD"])
    kickoff = await call(dendrite, gateway, VideoUpscalingJobProtocol(job_id=job_id, miner_payload=payload))
    assert kickoff.job_response.accepted is True
    poll = await call(dendrite, gateway, VideoUpscalingPollProtocol(job_id=job_id))
    assert poll.poll_response.status == "processing"
    again = await call(dendrite, gateway, VideoUpscalingJobProtocol(job_id=job_id, miner_payload=payload))
    assert again.job_response.accepted is True
    backend.script.release.set()
    for _ in range(100):
        poll = await call(dendrite, gateway, VideoUpscalingPollProtocol(job_id=job_id))
        if poll.poll_response.status != "processing":
            break
        await asyncio.sleep(0.05)
    assert poll.poll_response.status == "completed"
    assert poll.poll_response.optimized_video_urls == [result_url(f"{job_id}-0"), result_url(f"{job_id}-1")]
    assert poll.poll_response.optimized_video_url == result_url(f"{job_id}-0")
    assert len(backend.script.requests) == 2, "the repeated kick-off did not start the job twice"


async def test_job_without_id_is_refused_and_unknown_jobs_poll_failed(gateway, dendrite, backend) -> None:
    kickoff = await call(
        dendrite,
        gateway,
        VideoCompressionJobProtocol(miner_payload=CompressionMinerPayload(reference_video_urls=urls("ok"))),
    )
    assert kickoff.job_response.accepted is False
    for poll_class in (VideoUpscalingPollProtocol, VideoCompressionPollProtocol):
        poll = await call(dendrite, gateway, poll_class(job_id="00000000-0000-4000-8000-000000000000"))
        assert poll.dendrite.status_code == 200 and poll.poll_response.status == "failed"
    assert backend.script.requests == []


async def test_job_synapses_are_answered_not_500_while_redis_is_down(
    gateway_factory, dendrite, backend, caplog
) -> None:
    """Valkey (its own, password-protected) stops under a running gateway: the kick-off is refused (HTTP 200,
    accepted False, the reason in the status message) and a poll answers "processing" (the job's state is
    unknown, not failed); each logs one WARNING naming neither the password nor the Redis URL."""
    password = "s3cret-valkey-pass"
    valkey = EmbeddedValkey().start()
    try:
        admin = redis.Redis.from_url(valkey.url)
        admin.config_set("requirepass", password)
        admin.close()
        store_url = f"redis://:{password}@127.0.0.1:{valkey.port}/0"
        gateway = await gateway_factory(store_url=store_url)
    finally:
        await asyncio.to_thread(valkey.stop)

    job_id = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
    payload = UpscalingMinerPayload(reference_video_urls=urls("ok"), task_types=["SD2HD"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="miner_gateway"):
        started = time.monotonic()
        kickoff = await call(
            dendrite, gateway, VideoUpscalingJobProtocol(job_id=job_id, miner_payload=payload), timeout=12.0
        )
        assert time.monotonic() - started < 12.0
        poll = await call(dendrite, gateway, VideoCompressionPollProtocol(job_id=job_id), timeout=12.0)

    assert kickoff.dendrite.status_code == 200, kickoff.dendrite.status_message
    assert kickoff.job_response.accepted is False
    assert kickoff.dendrite.status_message == JOB_REFUSED
    assert poll.dendrite.status_code == 200, poll.dendrite.status_message
    assert (poll.poll_response.job_id, poll.poll_response.status) == (job_id, "processing")
    assert poll.poll_response.optimized_video_urls == []
    assert poll.dendrite.status_message == JOB_STATUS_UNKNOWN
    assert backend.script.requests == []

    warnings = [
        record
        for record in caplog.records
        if record.name == "miner_gateway.handlers" and record.levelno == logging.WARNING
    ]
    assert [(r.getMessage(), r.route, r.job_id) for r in warnings] == [
        (JOB_REFUSED, "VideoUpscalingJobProtocol", job_id),
        (JOB_STATUS_UNKNOWN, "VideoCompressionPollProtocol", job_id),
    ]
    assert all(r.error.startswith("ConnectionError: ") for r in warnings), [r.error for r in warnings]
    for record in caplog.records:
        logged = f"{record.getMessage()} {vars(record)}"
        assert password not in logged and store_url not in logged
    assert password not in caplog.text


async def test_job_store_that_never_answers_is_a_refusal_before_the_deadline(
    gateway_factory, dendrite, monkeypatch
) -> None:
    """A Redis that accepts connections but never replies (a hung or blackholed host) would hold the kick-off
    past the validator's timeout; the gateway refuses it at the synapse deadline instead."""

    async def hangs(*args, **kwargs):
        await asyncio.Event().wait()

    monkeypatch.setattr(JobRunner, "submit", hangs)
    gateway = await gateway_factory(deadline_margin_seconds=1.0)
    started = time.monotonic()
    kickoff = await call(
        dendrite,
        gateway,
        VideoUpscalingJobProtocol(
            job_id="1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",
            miner_payload=UpscalingMinerPayload(reference_video_urls=urls("ok")),
        ),
        timeout=3.0,
    )
    assert kickoff.dendrite.status_code == 200, kickoff.dendrite.status_message
    assert (kickoff.job_response.accepted, kickoff.dendrite.status_message) == (False, JOB_REFUSED)
    assert 1.5 < time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    ("synapse_class", "body", "mentions"),
    [
        (
            VideoUpscalingProtocol,
            {"miner_payload": {"reference_video_urls": "https://v.test/ok/0.mp4"}},
            "reference_video_urls",
        ),
        (
            VideoUpscalingProtocol,
            {"miner_payload": {"maximum_optimized_size_mb": 0}},
            "maximum_optimized_size_mb",
        ),
        (
            VideoCompressionProtocol,
            {"miner_payload": {"reference_video_url": "x", "vmaf_threshold": 150}},
            "vmaf_threshold",
        ),
        (VideoUpscalingPollProtocol, {"job_id": {"nested": True}}, "job_id"),
        (CompetitionInvitationProtocol, {"registration_deadline": "2026-08-25T00:00:00"}, "timezone"),
        (CompetitionSubmissionProtocol, {"request_nonce": "short"}, "request_nonce"),
        (LengthCheckProtocol, {"max_content_length": 20}, "max_content_length"),
    ],
)
async def test_malformed_payloads_are_answered_with_a_reason(
    gateway, dendrite, owner_dendrite, backend, synapse_class, body, mentions
) -> None:
    caller = owner_dendrite if synapse_class in COMPETITION_ROUTES else dendrite
    response = await post_raw(caller, gateway, synapse_class, body)
    assert response.status_code == 400
    assert mentions in response.json()["message"]
    assert backend.script.requests == []
    assert (await call(dendrite, gateway, TaskWarrantProtocol())).dendrite.status_code == 200


async def test_body_that_is_not_json_is_answered_and_the_gateway_keeps_serving(gateway, dendrite) -> None:
    response = await post_raw(dendrite, gateway, VideoUpscalingProtocol, "{not json")
    assert 400 <= response.status_code < 500
    assert (await call(dendrite, gateway, TaskWarrantProtocol())).warrant_task is TaskType.UPSCALING


async def test_one_span_per_synapse_with_its_context_propagated_to_the_services(
    gateway, dendrite, backend, spans, wallets
) -> None:
    spans.clear()
    synapse = VideoUpscalingProtocol(
        round_id="round-42",
        miner_payload=UpscalingMinerPayload(
            reference_video_urls=urls("ok", "fail"), task_types=["SD24K", "SD2HD"]
        ),
    )
    await call(dendrite, gateway, synapse)
    finished = spans.get_finished_spans()
    [root] = [span for span in finished if span.name == "synapse VideoUpscalingProtocol"]
    assert root.attributes["mesh.route"] == "VideoUpscalingProtocol"
    assert root.attributes["mesh.validator.hotkey"] == wallets.validator.hotkey.ss58_address
    assert root.attributes["mesh.round_id"] == "round-42"
    assert root.attributes["mesh.task_type"] == "upscaling"
    items = sorted(
        (span for span in finished if span.name == "mesh.item"),
        key=lambda span: span.attributes["mesh.item.index"],
    )
    assert [(s.attributes["mesh.item.index"], s.attributes["mesh.task_type"]) for s in items] == [
        (0, "SD24K"),
        (1, "SD2HD"),
    ]
    assert root.parent is None, "the synapse span is the root: FastAPI's own spans are off"
    assert all(item.parent.span_id == root.context.span_id for item in items)
    assert all(item.kind is SpanKind.CLIENT and item.attributes["rpc.method"] == "Upscale" for item in items)
    trace_id = format(root.context.trace_id, "032x")
    item_span_ids = {format(item.context.span_id, "016x") for item in items}
    assert len(backend.script.traceparents) == 2
    assert {parent.split("-")[1] for parent in backend.script.traceparents} == {trace_id}
    assert {parent.split("-")[2] for parent in backend.script.traceparents} == item_span_ids


async def test_chain_mode_reads_the_metagraph_and_publishes_the_axon(
    wallets, redis_url, fake_metagraph, backend, monkeypatch
) -> None:
    """With a real network name the gateway reads validators, stake and owner from the subtensor (re-synced)
    and announces its axon there; the stranger is turned away, but as subnet owner it may reach the
    competition routes, which the validator may not."""
    chains: list[FakeSubtensor] = []

    def subtensor(network: str) -> FakeSubtensor:
        chains.append(FakeSubtensor(fake_metagraph, wallets.stranger.hotkey.ss58_address, network))
        return chains[-1]

    monkeypatch.setattr(bittensor, "Subtensor", subtensor)
    axon_port = free_port()
    settings = GatewaySettings(
        _env_file=None, host="127.0.0.1", port=0, axon_port=axon_port, external_ip="127.0.0.1",
        network="test", netuid=85, upscaler_addrs=[backend.address], drain_seconds=0,
        metagraph_sync_seconds=0.2,
    )
    gateway = Gateway(settings, wallets.miner, redis_url=redis_url)
    await gateway.start()
    validator = bittensor.Dendrite(wallet=wallets.validator)
    stranger = bittensor.Dendrite(wallet=wallets.stranger)
    try:
        assert len(chains) == 1 and chains[0].network == "test"
        assert chains[0].served == [(85, "127.0.0.1", axon_port)]
        assert (await call(validator, gateway, TaskWarrantProtocol())).warrant_task is TaskType.UPSCALING
        assert (await call(stranger, gateway, TaskWarrantProtocol())).dendrite.status_code == 403
        invitation = CompetitionInvitationProtocol(**load_fixture("competition_invitation.json"))
        assert (await call(stranger, gateway, invitation)).dendrite.status_code == 200
        assert (await call(validator, gateway, invitation)).dendrite.status_code == 403
        await asyncio.sleep(0.5)
        assert len(chains[0].reads) >= 2 and all(read == (85, True) for read in chains[0].reads)
    finally:
        await validator.aclose_session()
        await stranger.aclose_session()
        await gateway.stop()
