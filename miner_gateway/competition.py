"""What the gateway answers the subnet owner's compression-competition synapses (spec: competition.md §1).

The answers follow the subnet's base miner: take part only in an open invitation for which the validator
found us eligible; answer a submission poll READY (repository URL + GitHub PAT) only when it is fresh and an
entry is configured, NOT_READY otherwise, and WITHDRAWN only when the operator says so. The PAT is read from
the environment on every poll, so a rotated token needs no restart, and is held as a SecretStr until it is
placed in the reply: it never reaches a log record, a span or the job store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import SecretStr

from miner_gateway.config import GatewaySettings
from miner_gateway.protocol import (
    CompetitionInvitationProtocol,
    CompetitionInvitationResponse,
    CompetitionSubmissionProtocol,
    CompetitionSubmissionResponse,
    CompetitionSubmissionStatus,
    CompetitionType,
)

NOT_PARTICIPATING = "this miner does not take part in competitions"
WITHDRAWN = "the operator has withdrawn this miner from the competition"
INVALID_INVITATION = "invalid or expired competition invitation"
STALE_POLL = "invalid or stale competition submission request"
NOT_CONFIGURED = "repository submission is not configured"
REASON_LIMIT = 256  # refusal_reason and reason: max_length on the wire


@dataclass(frozen=True)
class CompetitionEntry:
    """The operator's entry: whether to take part, the repository, and where the PAT is kept."""

    participate: bool = False
    repository_url: str = ""
    pat_env: str = "MINER_COMPETITION_GITHUB_PAT"
    withdraw: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> CompetitionEntry:
        return cls(
            participate=settings.competition_participate,
            repository_url=settings.competition_repository_url,
            pat_env=settings.competition_pat_env,
            withdraw=settings.competition_withdraw,
        )

    def github_pat(self) -> SecretStr:
        """The PAT as the environment holds it now (empty when unset)."""
        return SecretStr(self.environ.get(self.pat_env, "").strip())

    def missing(self) -> list[str]:
        """What keeps a participating entry from being READY, for the start-up warning (no secret in it)."""
        gaps = []
        if not self.repository_url:
            gaps.append("GATEWAY_COMPETITION_REPOSITORY_URL is empty")
        if not self.github_pat().get_secret_value():
            gaps.append(f"the PAT variable {self.pat_env} is empty or unset")
        return gaps


def _reason(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def answer_invitation(
    synapse: CompetitionInvitationProtocol, entry: CompetitionEntry, now: datetime | None = None
) -> CompetitionInvitationResponse:
    """Take part, or decline with the reason: invalid/expired, withdrawn, not taking part, or ineligible.

    The wire type admits COMPRESSION only, so the competition type needs no check of its own."""
    now = now or datetime.now(UTC)
    if not synapse.is_open_invitation(now):
        refusal = INVALID_INVITATION
    elif entry.withdraw:
        refusal = WITHDRAWN
    elif not entry.participate:
        refusal = NOT_PARTICIPATING
    elif synapse.eligibility_reason_code is not None:
        refusal = synapse.eligibility_reason_detail or synapse.eligibility_reason_code
    else:
        refusal = None
    participating = refusal is None
    return CompetitionInvitationResponse(
        competition_id=synapse.competition_id,
        echo_nonce=synapse.invitation_nonce,
        participating=participating,
        supported_competition_type=CompetitionType.COMPRESSION if participating else None,
        refusal_reason=None if participating else _reason(refusal),
    )


def answer_submission(
    synapse: CompetitionSubmissionProtocol, entry: CompetitionEntry, now: datetime | None = None
) -> CompetitionSubmissionResponse:
    """READY with the repository and PAT for a fresh poll when configured; WITHDRAWN only when configured."""
    echo = {"competition_id": synapse.competition_id, "echo_nonce": synapse.request_nonce}
    not_ready = CompetitionSubmissionStatus.NOT_READY
    if not synapse.is_fresh_request(now or datetime.now(UTC)):
        return CompetitionSubmissionResponse(**echo, status=not_ready, reason=STALE_POLL)
    if entry.withdraw:
        return CompetitionSubmissionResponse(**echo, status=CompetitionSubmissionStatus.WITHDRAWN, reason=WITHDRAWN)
    if not entry.participate:
        return CompetitionSubmissionResponse(**echo, status=not_ready, reason=NOT_PARTICIPATING)
    pat = entry.github_pat()
    if not (entry.repository_url and pat.get_secret_value()):
        return CompetitionSubmissionResponse(**echo, status=not_ready, reason=NOT_CONFIGURED)
    return CompetitionSubmissionResponse(
        **echo,
        status=CompetitionSubmissionStatus.READY,
        repository_url=entry.repository_url,
        github_pat=pat.get_secret_value(),
    )
