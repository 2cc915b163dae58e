"""The compression competition through the gateway: a real Dendrite calling the real Axon on loopback.

Only the subnet owner reaches the two competition synapses (configured in `local` mode, read from the chain
otherwise; the chain is the one fake, a small subtensor object). The owner gets the configured answers, and
the GitHub PAT it may receive reaches no log line, span or Redis key.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta

import bittensor
import pytest
import redis

from mesh.config import ConfigError, load_settings
from mesh.embedded import free_port
from mesh.logs import configure_logging
from miner_gateway.competition import (
    INVALID_INVITATION,
    NOT_CONFIGURED,
    NOT_PARTICIPATING,
    STALE_POLL,
    WITHDRAWN,
)
from miner_gateway.config import GatewaySettings
from miner_gateway.protocol import CompetitionInvitationProtocol, CompetitionSubmissionProtocol
from miner_gateway.server import Gateway
from tests.miner_gateway.conftest import FakeSubtensor, call

REPOSITORY = "https://github.com/vidaio-mesh/compression-entry.git"
OWNER_ONLY = "competition requests are restricted to the subnet owner"
LOCAL = {"_env_file": None, "network": "local", "validator_hotkeys": ["5V"], "upscaler_addrs": ["127.0.0.1:1"]}
COMPETITION_SPANS = {"synapse CompetitionInvitationProtocol", "synapse CompetitionSubmissionProtocol"}


def invitation(**overrides) -> CompetitionInvitationProtocol:
    """An open invitation for an eligible miner, as the owner's validator sends it."""
    values = dict(
        competition_id="compression-2026-12",
        manifest_digest="5" * 64,
        registration_deadline=datetime.now(UTC) + timedelta(hours=2),
        invitation_nonce=secrets.token_urlsafe(24),
        observed_alpha_stake=900.0,
        minimum_alpha_stake=500.0,
    )
    return CompetitionInvitationProtocol(**{**values, **overrides})


def poll(**overrides) -> CompetitionSubmissionProtocol:
    """A fresh submission poll."""
    values = dict(
        competition_id="compression-2026-12",
        manifest_digest="5" * 64,
        request_nonce=secrets.token_urlsafe(24),
        requested_at=datetime.now(UTC),
    )
    return CompetitionSubmissionProtocol(**{**values, **overrides})


@pytest.fixture()
def pat(monkeypatch) -> tuple[str, str]:
    """(variable name, token): a PAT in the gateway's environment under a name of this test's own."""
    name, token = f"TEST_COMPETITION_PAT_{secrets.token_hex(4).upper()}", f"github_pat_{secrets.token_hex(30)}"
    monkeypatch.setenv(name, token)
    return name, token


@pytest.fixture()
async def entered(gateway_factory, pat) -> Gateway:
    """A gateway taking part, with a repository and a PAT: the READY configuration."""
    return await gateway_factory(
        competition_participate=True, competition_repository_url=REPOSITORY, competition_pat_env=pat[0]
    )


async def test_only_the_owner_reaches_the_competition_routes_and_nothing_runs_for_others(
    entered, wallets, owner_dendrite, spans, caplog
) -> None:
    """A validator with a permit and an unknown hotkey get 403 on both synapses before any handler runs."""
    spans.clear()
    caplog.set_level(logging.INFO, logger="miner_gateway")
    for wallet in (wallets.validator, wallets.stranger):
        outsider = bittensor.Dendrite(wallet=wallet)
        try:
            for synapse in (invitation(), poll()):
                answered = await call(outsider, entered, synapse)
                assert answered.dendrite.status_code == 403, wallet.name
                assert OWNER_ONLY in answered.dendrite.status_message
        finally:
            await outsider.aclose_session()
        assert answered.submission_response.status.value == "NOT_READY"
        assert answered.submission_response.github_pat == "" and answered.submission_response.repository_url == ""
    assert not COMPETITION_SPANS & {span.name for span in spans.get_finished_spans()}
    assert not [record for record in caplog.records if record.getMessage().startswith("competition")]

    assert (await call(owner_dendrite, entered, invitation())).invitation_response.participating is True
    assert (await call(owner_dendrite, entered, poll())).submission_response.status.value == "READY"
    assert COMPETITION_SPANS <= {span.name for span in spans.get_finished_spans()}


async def test_chain_mode_takes_the_owner_from_the_chain_and_follows_its_changes(
    wallets, redis_url, fake_metagraph, backend, monkeypatch
) -> None:
    chain = FakeSubtensor(fake_metagraph, wallets.owner.hotkey.ss58_address, "test")
    monkeypatch.setattr(bittensor, "Subtensor", lambda network: chain)
    settings = GatewaySettings(
        _env_file=None, host="127.0.0.1", port=0, axon_port=free_port(), external_ip="127.0.0.1",
        network="test", upscaler_addrs=[backend.address], drain_seconds=0, metagraph_sync_seconds=0.1,
    )
    gateway = Gateway(settings, wallets.miner, redis_url=redis_url)
    await gateway.start()
    callers = {name: bittensor.Dendrite(wallet=getattr(wallets, name))
               for name in ("owner", "validator", "second_validator")}

    async def statuses() -> dict[str, tuple[int, int]]:
        return {
            name: ((await call(d, gateway, invitation())).dendrite.status_code,
                   (await call(d, gateway, poll())).dendrite.status_code)
            for name, d in callers.items()
        }

    async def after_resync(expected: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        for _ in range(40):
            if (seen := await statuses()) == expected:
                break
            await asyncio.sleep(0.1)
        return seen

    try:
        assert await statuses() == {"owner": (200, 200), "validator": (403, 403), "second_validator": (403, 403)}
        chain.owner = wallets.second_validator.hotkey.ss58_address
        assert await after_resync(
            {"owner": (403, 403), "validator": (403, 403), "second_validator": (200, 200)}
        ) == {"owner": (403, 403), "validator": (403, 403), "second_validator": (200, 200)}
        chain.owner = None
        assert set((await after_resync({n: (403, 403) for n in callers})).values()) == {(403, 403)}
        refused = await call(callers["second_validator"], gateway, poll())
        assert "subnet owner hotkey unavailable" in refused.dendrite.status_message
    finally:
        for dendrite in callers.values():
            await dendrite.aclose_session()
        await gateway.stop()


async def test_invitations_are_answered_as_configured(gateway_factory, owner_dendrite, pat) -> None:
    taking_part = await gateway_factory(
        competition_participate=True, competition_repository_url=REPOSITORY, competition_pat_env=pat[0]
    )
    sent = invitation()
    reply = (await call(owner_dendrite, taking_part, sent)).invitation_response
    assert (reply.competition_id, reply.echo_nonce) == (sent.competition_id, sent.invitation_nonce)
    assert (reply.participating, reply.supported_competition_type.value, reply.refusal_reason) == (
        True, "COMPRESSION", None
    )
    cases = [
        (invitation(registration_deadline=datetime.now(UTC) - timedelta(seconds=1)), INVALID_INVITATION),
        (
            invitation(
                eligibility_reason_code="ALPHA_STAKE_BELOW_MINIMUM",
                eligibility_reason_detail="Observed alpha stake 9 is below the minimum 500",
                observed_alpha_stake=9.0,
            ),
            "Observed alpha stake 9 is below the minimum 500",
        ),
        (invitation(eligibility_reason_code="ALPHA_STAKE_UNAVAILABLE"), "ALPHA_STAKE_UNAVAILABLE"),
        (invitation(eligibility_reason_code="X", eligibility_reason_detail="d" * 500), "d" * 255 + "…"),
    ]
    for sent, refusal in cases:
        reply = (await call(owner_dendrite, taking_part, sent)).invitation_response
        assert (reply.participating, reply.supported_competition_type, reply.refusal_reason) == (
            False, None, refusal
        )
        assert (reply.competition_id, reply.echo_nonce) == (sent.competition_id, sent.invitation_nonce)

    for settings, refusal in (({}, NOT_PARTICIPATING), ({"competition_withdraw": True}, WITHDRAWN)):
        declining = await gateway_factory(**settings)
        sent = invitation()
        reply = (await call(owner_dendrite, declining, sent)).invitation_response
        assert (reply.participating, reply.refusal_reason, reply.echo_nonce) == (
            False, refusal, sent.invitation_nonce
        )


async def test_submission_polls_are_answered_as_configured(
    gateway_factory, entered, owner_dendrite, pat, monkeypatch, caplog
) -> None:
    name, token = pat
    sent = poll()
    answer = (await call(owner_dendrite, entered, sent)).submission_response
    assert (answer.competition_id, answer.echo_nonce) == (sent.competition_id, sent.request_nonce)
    assert (answer.status.value, answer.repository_url, answer.github_pat, answer.reason) == (
        "READY", REPOSITORY, token, None
    )
    rotated = f"github_pat_{secrets.token_hex(30)}"
    monkeypatch.setenv(name, rotated)
    assert (await call(owner_dendrite, entered, poll())).submission_response.github_pat == rotated

    def not_ready(answer, reason: str) -> bool:
        return (answer.status.value, answer.repository_url, answer.github_pat, answer.reason) == (
            "NOT_READY", "", "", reason
        )

    for stale in (datetime.now(UTC) - timedelta(minutes=6), datetime.now(UTC) + timedelta(minutes=2)):
        assert not_ready((await call(owner_dendrite, entered, poll(requested_at=stale))).submission_response,
                         STALE_POLL)
    monkeypatch.delenv(name)
    assert not_ready((await call(owner_dendrite, entered, poll())).submission_response, NOT_CONFIGURED)
    monkeypatch.setenv(name, token)
    no_repository = await gateway_factory(competition_participate=True, competition_pat_env=name)
    assert not_ready((await call(owner_dendrite, no_repository, poll())).submission_response, NOT_CONFIGURED)
    [warning] = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "NOT_READY: GATEWAY_COMPETITION_REPOSITORY_URL is empty" in warning and token not in warning
    declining = await gateway_factory(competition_pat_env=name)
    assert not_ready((await call(owner_dendrite, declining, poll())).submission_response, NOT_PARTICIPATING)

    withdrawn = await gateway_factory(competition_withdraw=True, competition_pat_env=name)
    sent = poll()
    answer = (await call(owner_dendrite, withdrawn, sent)).submission_response
    assert (answer.status.value, answer.repository_url, answer.github_pat, answer.reason) == (
        "WITHDRAWN", "", "", WITHDRAWN
    )
    assert answer.echo_nonce == sent.request_nonce
    stale = poll(requested_at=datetime.now(UTC) - timedelta(hours=1))
    assert not_ready((await call(owner_dendrite, withdrawn, stale)).submission_response, STALE_POLL)


async def test_the_pat_reaches_no_log_line_span_or_redis_key(
    gateway_factory, owner_dendrite, pat, spans, caplog, capsys, redis_url
) -> None:
    """Everything logged (JSON handler and bittensor's own lines at TRACE) and every span is searched."""
    name, token = pat
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("miner-gateway", "DEBUG")  # the gateway's JSON handler, writing into capsys
    root.handlers.extend(saved_handlers)  # and caplog's
    caplog.set_level(logging.DEBUG)
    bittensor.logging.set_trace(True)
    spans.clear()
    try:
        gateway = await gateway_factory(
            competition_participate=True, competition_repository_url=REPOSITORY, competition_pat_env=name
        )
        answers = [(await call(owner_dendrite, gateway, poll())).submission_response for _ in range(2)]
        await call(owner_dendrite, gateway, invitation())
    finally:
        bittensor.logging.set_trace(False)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert [answer.github_pat for answer in answers] == [token, token], "the owner did receive the PAT"

    captured = capsys.readouterr()
    json_lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    assert any('"competition submission answered"' in line and '"READY"' in line for line in json_lines)
    assert token not in captured.out and token not in captured.err
    records = [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    assert any("competition submission answered" in record for record in records)
    assert not [record for record in records if token in record]

    finished = spans.get_finished_spans()
    assert COMPETITION_SPANS <= {span.name for span in finished}
    assert not [span.name for span in finished if token in span.to_json()]

    store = redis.Redis.from_url(redis_url)
    try:
        keys = list(store.scan_iter())
        assert not [key for key in keys if token.encode() in key + stored_value(store, key)]
    finally:
        store.close()


def stored_value(store: redis.Redis, key: bytes) -> bytes:
    """Everything Redis holds under `key`, as bytes, whatever the key's type."""
    kind = store.type(key).decode()
    if kind == "string":
        return store.get(key)
    if kind == "hash":
        return b"".join(k + v for k, v in store.hgetall(key).items())
    if kind == "list":
        return b"".join(store.lrange(key, 0, -1))
    if kind == "set":
        return b"".join(store.smembers(key))
    if kind == "zset":
        return b"".join(store.zrange(key, 0, -1))
    return store.dump(key) or b""


@pytest.mark.parametrize(
    ("settings", "mentions"),
    [
        ({"competition_repository_url": "https://gitlab.com/a/b.git"}, "https://gitlab.com/a/b.git"),
        ({"competition_repository_url": "https://github.com/a/b"}, "GATEWAY_COMPETITION_REPOSITORY_URL"),
        ({"competition_pat_env": "MY-PAT"}, "GATEWAY_COMPETITION_PAT_ENV"),
        ({"competition_withdraw": True, "competition_participate": True}, "GATEWAY_COMPETITION_WITHDRAW"),
        ({"owner_hotkey": "5F", "network": "finney", "validator_hotkeys": []}, "GATEWAY_OWNER_HOTKEY"),
    ],
)
def test_bad_competition_settings_stop_the_start_with_a_clear_error(settings, mentions) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as stopped:
        load_settings(GatewaySettings, **{**LOCAL, **settings})
    assert mentions in str(stopped.value)


def test_a_repository_url_holding_a_token_is_refused_without_repeating_it() -> None:
    token = f"ghp_{secrets.token_hex(18)}"
    with pytest.raises(ConfigError) as stopped:
        load_settings(GatewaySettings, **LOCAL, competition_repository_url=f"https://x:{token}@github.com/a/b.git")
    assert "GATEWAY_COMPETITION_REPOSITORY_URL" in str(stopped.value) and "value withheld" in str(stopped.value)
    assert token not in str(stopped.value)
    entry = load_settings(GatewaySettings, **LOCAL, competition_repository_url=f" {REPOSITORY} ")
    assert entry.competition_repository_url == REPOSITORY
