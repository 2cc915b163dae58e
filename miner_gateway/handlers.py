"""The axon's routes: a thin synapse <-> domain adapter (the gateway's "servicer").

Each route is a (forward, blacklist, priority) triple. The blacklist runs in the axon middleware before the
signature check and before any work; forward turns the synapse into work items for the dispatcher or the
job runner and writes the response fields back. Every forward runs in one span carrying the route, the
validator hotkey, the round or job id and the task type; the item spans and gRPC calls are its children.

When the job store (Redis) is unreachable or does not answer before the synapse's deadline, the Job and Poll
synapses are still answered (HTTP 200): a kick-off with `accepted = False`, a poll with "processing" (the job
may well finish once Redis is back; the validator's own deadline bounds its wait), both with the reason in
the axon status message, and a WARNING in the gateway's log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from inspect import Parameter, Signature
from typing import Tuple

import bittensor
from opentelemetry import trace

from miner_gateway.auth import ValidatorDirectory
from miner_gateway.competition import CompetitionEntry, answer_invitation, answer_submission
from miner_gateway.config import GatewaySettings
from miner_gateway.dispatch import Dispatcher
from miner_gateway.items import compress_items, upscale_items
from miner_gateway.jobs import PROCESSING, JobKind, JobRunner, JobStoreUnavailable
from miner_gateway.protocol import (
    CompetitionInvitationProtocol,
    CompetitionSubmissionProtocol,
    ContentLength,
    LengthCheckProtocol,
    MinerResponse,
    PollResponse,
    TaskType,
    TaskWarrantProtocol,
    VideoCompressionJobProtocol,
    VideoCompressionPollProtocol,
    VideoCompressionProtocol,
    VideoUpscalingJobProtocol,
    VideoUpscalingPollProtocol,
    VideoUpscalingProtocol,
)

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

DEFAULT_SYNAPSE_TIMEOUT = 12.0
JOB_STORE_UNAVAILABLE = "job store unavailable"
JOB_REFUSED = f"{JOB_STORE_UNAVAILABLE}: job not accepted, try again later"
JOB_STATUS_UNKNOWN = f"{JOB_STORE_UNAVAILABLE}: job status unknown, poll again later"

Forward = Callable[[bittensor.Synapse], Awaitable[bittensor.Synapse]]


def _typed(function: Callable, synapse_class: type[bittensor.Synapse], returns: object) -> Callable:
    """An async wrapper with the exact signature the axon expects.

    The axon takes the route name and the body model from the annotation of the first parameter, and
    asserts the blacklist/priority signatures by equality, so one generic function serves every route.
    """

    async def route(synapse):
        return await function(synapse)

    route.__signature__ = Signature(
        [Parameter("synapse", Parameter.POSITIONAL_OR_KEYWORD, annotation=synapse_class)],
        return_annotation=returns,
    )
    route.__name__ = f"{function.__name__}_{synapse_class.__name__}"
    return route


class SynapseHandlers:
    """Forward, blacklist and priority functions for every route the subnet's validators call."""

    def __init__(
        self,
        settings: GatewaySettings,
        directory: ValidatorDirectory,
        dispatcher: Dispatcher,
        jobs: JobRunner,
        competition: CompetitionEntry | None = None,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._dispatcher = dispatcher
        self._jobs = jobs
        self._competition = competition or CompetitionEntry.from_settings(settings)

    def attach(self, axon: bittensor.Axon) -> None:
        routes: dict[type[bittensor.Synapse], tuple[Forward, str | None]] = {
            TaskWarrantProtocol: (self.task_warrant, None),
            LengthCheckProtocol: (self.length_check, None),
            VideoUpscalingProtocol: (self.upscale, "upscaling"),
            VideoCompressionProtocol: (self.compress, "compression"),
            VideoUpscalingJobProtocol: (self.start_upscaling_job, "upscaling"),
            VideoUpscalingPollProtocol: (self.poll_upscaling_job, "upscaling"),
            VideoCompressionJobProtocol: (self.start_compression_job, "compression"),
            VideoCompressionPollProtocol: (self.poll_compression_job, "compression"),
            CompetitionInvitationProtocol: (self.competition_invitation, "competition"),
            CompetitionSubmissionProtocol: (self.competition_submission, "competition"),
        }
        for synapse_class, (forward, task) in routes.items():
            blacklist = self.blacklist_competition if task == "competition" else self.blacklist
            axon.attach(
                forward_fn=_typed(self._traced(forward, task), synapse_class, synapse_class),
                blacklist_fn=_typed(blacklist, synapse_class, Tuple[bool, str]),
                priority_fn=_typed(self.priority, synapse_class, float),
            )

    async def blacklist(self, synapse: bittensor.Synapse) -> tuple[bool, str]:
        hotkey = synapse.dendrite.hotkey if synapse.dendrite else None
        reason = self._directory.refuse(hotkey)
        if reason:
            log.debug("blacklisted", extra={"route": synapse.name, "hotkey": hotkey, "reason": reason})
            return True, reason
        return False, "validator"

    async def blacklist_competition(self, synapse: bittensor.Synapse) -> tuple[bool, str]:
        hotkey = synapse.dendrite.hotkey if synapse.dendrite else None
        reason = self._directory.refuse_competition(hotkey)
        if reason:
            log.debug("blacklisted", extra={"route": synapse.name, "hotkey": hotkey, "reason": reason})
            return True, reason
        return False, "subnet owner"

    async def priority(self, synapse: bittensor.Synapse) -> float:
        return self._directory.stake(synapse.dendrite.hotkey if synapse.dendrite else None)

    def _traced(self, forward: Forward, task: str | None) -> Forward:
        async def traced(synapse: bittensor.Synapse) -> bittensor.Synapse:
            route = type(synapse).__name__
            hotkey = (synapse.dendrite.hotkey if synapse.dendrite else None) or ""
            attributes = {"mesh.route": route, "mesh.validator.hotkey": hotkey}
            if task:
                attributes["mesh.task_type"] = task
            for name, attribute in (("round_id", "mesh.round_id"), ("job_id", "mesh.job.id")):
                value = getattr(synapse, name, None)
                if value:
                    attributes[attribute] = value
            started = time.perf_counter()
            with tracer.start_as_current_span(
                f"synapse {route}", kind=trace.SpanKind.SERVER, attributes=attributes
            ):
                answered = await forward(synapse)
                log.info(
                    "synapse answered",
                    extra={"route": route, "hotkey": hotkey, "seconds": round(time.perf_counter() - started, 4)},
                )
            return answered

        traced.__name__ = forward.__name__
        return traced

    def _deadline(self, synapse: bittensor.Synapse) -> float:
        timeout = synapse.timeout if synapse.timeout is not None else DEFAULT_SYNAPSE_TIMEOUT
        return time.monotonic() + timeout - self._settings.deadline_margin_seconds

    async def task_warrant(self, synapse: TaskWarrantProtocol) -> TaskWarrantProtocol:
        synapse.warrant_task = TaskType[self._settings.warrant_task]
        return synapse

    async def length_check(self, synapse: LengthCheckProtocol) -> LengthCheckProtocol:
        synapse.max_content_length = ContentLength(self._settings.max_content_length)
        return synapse

    async def upscale(self, synapse: VideoUpscalingProtocol) -> VideoUpscalingProtocol:
        items = upscale_items(synapse.miner_payload)
        urls = await self._dispatcher.upscale(items, self._deadline(synapse), uuid.uuid4().hex[:16])
        synapse.miner_response = MinerResponse(optimized_video_urls=urls)
        return synapse

    async def compress(self, synapse: VideoCompressionProtocol) -> VideoCompressionProtocol:
        items = compress_items(synapse.miner_payload)
        urls = await self._dispatcher.compress(items, self._deadline(synapse), uuid.uuid4().hex[:16])
        synapse.miner_response = MinerResponse(optimized_video_urls=urls)
        return synapse

    async def _job_store_call(self, synapse, call: Awaitable, answer: str):
        """`call`'s result, or None after answering the synapse with `answer` when the job store is down."""
        seconds = max(0.05, self._deadline(synapse) - time.monotonic())
        try:
            return await asyncio.wait_for(call, seconds)
        except (JobStoreUnavailable, TimeoutError) as error:
            if isinstance(error, JobStoreUnavailable):
                reason = str(error)
            else:
                reason = f"no answer within {seconds:.1f} s"
            log.warning(
                answer,
                extra={"route": type(synapse).__name__, "job_id": synapse.job_id[:128], "error": reason},
            )
            if synapse.axon is None:
                synapse.axon = bittensor.TerminalInfo()
            synapse.axon.status_message = answer
            return None

    async def _start_job(self, synapse, kind: JobKind):
        submitted = self._jobs.submit(synapse.job_id, kind, synapse.miner_payload)
        accepted = await self._job_store_call(synapse, submitted, JOB_REFUSED)
        synapse.job_response.accepted = bool(accepted)
        return synapse

    async def _poll_job(self, synapse, kind: JobKind):
        polled = await self._job_store_call(
            synapse, self._jobs.poll(synapse.job_id, kind), JOB_STATUS_UNKNOWN
        )
        status, urls = polled if polled is not None else (PROCESSING, [])
        synapse.poll_response = PollResponse(job_id=synapse.job_id, status=status, optimized_video_urls=urls)
        return synapse

    async def start_upscaling_job(self, synapse: VideoUpscalingJobProtocol) -> VideoUpscalingJobProtocol:
        return await self._start_job(synapse, "upscaling")

    async def poll_upscaling_job(self, synapse: VideoUpscalingPollProtocol) -> VideoUpscalingPollProtocol:
        return await self._poll_job(synapse, "upscaling")

    async def start_compression_job(
        self, synapse: VideoCompressionJobProtocol
    ) -> VideoCompressionJobProtocol:
        return await self._start_job(synapse, "compression")

    async def poll_compression_job(
        self, synapse: VideoCompressionPollProtocol
    ) -> VideoCompressionPollProtocol:
        return await self._poll_job(synapse, "compression")

    async def competition_invitation(
        self, synapse: CompetitionInvitationProtocol
    ) -> CompetitionInvitationProtocol:
        synapse.invitation_response = answer_invitation(synapse, self._competition)
        log.info(
            "competition invitation answered",
            extra={
                "competition_id": synapse.competition_id,
                "participating": synapse.invitation_response.participating,
                "refusal_reason": synapse.invitation_response.refusal_reason or "",
                "eligibility_reason_code": synapse.eligibility_reason_code or "",
            },
        )
        return synapse

    async def competition_submission(
        self, synapse: CompetitionSubmissionProtocol
    ) -> CompetitionSubmissionProtocol:
        synapse.submission_response = answer_submission(synapse, self._competition)
        log.info(
            "competition submission answered",
            extra={
                "competition_id": synapse.competition_id,
                "status": synapse.submission_response.status.value,
                "reason": synapse.submission_response.reason or "",
                "last_submission_status": synapse.last_submission_status.value,
                "last_submission_reason_code": synapse.last_submission_reason_code or "",
                "last_submission_reason_detail": synapse.last_submission_reason_detail or "",
                "submission_revision": synapse.submission_revision,
            },
        )
        return synapse
