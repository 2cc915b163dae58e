"""The local validator against a misbehaving miner: a real bittensor Axon (no gateway) whose handlers
answer the handshakes oddly, return too few URLs, an unreachable URL and the input itself twice. Every
failure must land in the report as the subnet would score it, and the round must count as unanswered.

No `from __future__ import annotations` here: Axon.attach reads each handler's parameter annotation as a class.
"""

import random

import bittensor
import httpx
import pytest

from mesh.embedded import free_port
from miner_gateway.protocol import (
    ContentLength,
    LengthCheckProtocol,
    TaskType,
    TaskWarrantProtocol,
    VideoCompressionProtocol,
    VideoUpscalingProtocol,
)
from vidaio_cli.demo import EXIT_NO_ANSWER, exit_code
from vidaio_cli.identities import MinerTarget, local_wallet, validator_wallet
from vidaio_cli.inputs import build_compression_inputs, build_upscaling_inputs
from vidaio_cli.validator import InputServer, LocalValidator, RoundPlan

HD_CLIP = "synth_hd_1280x720_30fps.mp4"


def test_input_server_serves_files_only_under_their_unguessable_path(tmp_path):
    payload = tmp_path / "clip.mp4"
    payload.write_bytes(b"\x00video bytes")
    with InputServer(tmp_path / "served") as server:
        url = server.url_for(payload)
        assert httpx.get(url).content == b"\x00video bytes"
        assert len(url.split("/")[3]) == 32
        assert httpx.get(f"http://127.0.0.1:{server.port}/clip.mp4").status_code == 404


def forward_warrant(synapse: TaskWarrantProtocol) -> TaskWarrantProtocol:
    synapse.warrant_task = TaskType.COMPRESSION
    return synapse


def forward_length(synapse: LengthCheckProtocol) -> LengthCheckProtocol:
    synapse.max_content_length = ContentLength.TEN
    return synapse


def forward_upscaling(synapse: VideoUpscalingProtocol) -> VideoUpscalingProtocol:
    synapse.miner_response.optimized_video_urls = ["http://127.0.0.1:1/never-uploaded.mp4"]
    return synapse


def forward_compression(synapse: VideoCompressionProtocol) -> VideoCompressionProtocol:
    same = synapse.miner_payload.reference_video_urls[0]
    synapse.miner_response.optimized_video_urls = [same, same]
    return synapse


@pytest.fixture()
def misbehaving_miner(tmp_path, monkeypatch):
    """A bare Axon on loopback; the public-IP lookup cannot reach the network here."""
    monkeypatch.setattr(bittensor.utils.networking, "get_external_ip", lambda: "127.0.0.1")
    wallet = local_wallet(tmp_path / "wallets", "misbehaving-miner")
    axon = bittensor.Axon(wallet=wallet, ip="127.0.0.1", port=free_port(), external_ip="127.0.0.1")
    for forward in (forward_warrant, forward_length, forward_upscaling, forward_compression):
        axon.attach(forward)
    axon.start()
    try:
        yield MinerTarget("127.0.0.1", axon.port, wallet.hotkey.ss58_address)
    finally:
        axon.stop()


async def test_failures_are_scored_zero_and_the_round_counts_as_unanswered(misbehaving_miner, clips_dir, tmp_path):
    rng = random.Random(4)
    source = clips_dir / HD_CLIP
    plan = RoundPlan("head",
                     build_upscaling_inputs(source, tmp_path / "in", ["SD24K", "HD24K"], seconds=0.4,
                                            reference_height=144, era="head", rng=rng),
                     build_compression_inputs(source, tmp_path / "in", [(89, "hevc", "CRF", 5.0)] * 2, seconds=0.4,
                                              reference_height=144, era="head", rng=rng))
    validator = LocalValidator(validator_wallet(tmp_path / "wallets"), tmp_path / "round", rng=rng)
    report = await validator.play(misbehaving_miner, plan)

    assert (report.warrant_task, report.content_length) == ("COMPRESSION", 10)
    unreachable, missing, *compressed = report.items
    assert [g.name for g in unreachable.gates if not g.passed] == ["download"]
    assert missing.error == "no URL returned for this item" and missing.predicted_score == 0.0
    for item in compressed:
        failed = {g.name for g in item.gates if not g.passed}
        assert {"compression_ratio", "codec", "unique_url"} <= failed, "the input returned twice, as H.264"
        assert item.predicted_score == 0.0
    assert compressed[0].ratio == pytest.approx(1.0), "item 0 got its own input back"
    assert not report.mesh_answered and exit_code(report) == EXIT_NO_ANSWER
