"""Gateway settings: GATEWAY_* environment variables, overridable by bittensor-style flags (see __main__)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode, SettingsConfigDict

from mesh.config import WITHHELD_INPUT, ServiceSettings
from miner_gateway.protocol import GITHUB_REPOSITORY_URL

LOCAL_NETWORK = "local"

# An endpoint: `host:port`, `[v6]:port`, or `dns:[//authority]/host:port` (every address the name resolves to).
TARGET = re.compile(r"(dns:(//[\w.\-\[\]:]*)?/)?([\w.\-]+|\[[0-9a-fA-F:.]+\]):\d{1,5}")

CommaList = Annotated[list[str], NoDecode]


class GatewaySettings(ServiceSettings):
    """The axon, who may call it, where the work goes, and how organic jobs are kept.

    `host` is the bind address of both listeners; `port` is the gRPC health listener (compose health checks),
    `axon_port` the bittensor axon.
    """

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=".env", extra="ignore", validate_default=True
    )

    port: int = Field(29118, ge=0, le=65535, description="gRPC health port (0 picks a free one)")
    axon_port: int = Field(8091, gt=1024, lt=65535, description="axon port (--axon.port)")
    external_ip: str | None = Field(None, description="IP published for the axon (--axon.external_ip)")
    external_port: int | None = Field(
        None, gt=1024, lt=65535, description="published port (--axon.external_port)"
    )

    wallet_name: str = "default"
    wallet_hotkey: str = "default"
    wallet_path: str = "~/.bittensor/wallets"
    netuid: int = Field(85, ge=0)
    network: str = Field(
        "finney",
        min_length=1,
        description="finney, test, a ws(s):// endpoint, or `local` for no chain at all",
    )
    chain_endpoint: str | None = Field(
        None, description="explicit subtensor endpoint (--subtensor.chain_endpoint)"
    )

    validator_hotkeys: CommaList = Field(
        default_factory=list, description="local network only: the SS58 hotkeys allowed to call"
    )
    owner_hotkey: str | None = Field(
        None,
        description="local network only: the subnet-owner hotkey that may send competition synapses "
        "(on a chain it is read from the chain)",
    )
    min_stake: float = Field(0.0, ge=0, description="reject validators with less stake (0 = no minimum)")
    metagraph_sync_seconds: float = Field(600.0, gt=0, description="how often the metagraph is re-synced")

    warrant_task: Literal["UPSCALING", "COMPRESSION"] = "UPSCALING"
    max_content_length: Literal[5, 10] = 5

    upscaler_addrs: CommaList = Field(
        default_factory=list, description="upscaler endpoints: host:port, or dns:///host:port for every address"
    )
    compressor_addrs: CommaList = Field(
        default_factory=list, description="compressor endpoints: host:port, or dns:///host:port for every address"
    )
    upscale_codec: Literal["hevc", "av1"] = "hevc"
    upscale_model: str = Field("", description="model name passed to the upscaler; empty = its default")
    deadline_margin_seconds: float = Field(
        2.0, ge=0, description="kept from the synapse timeout for the reply"
    )
    max_items: int = Field(10, ge=1, le=100, description='videos processed per synapse; the rest get ""')

    job_timeout_seconds: float = Field(1140.0, gt=0, description="time budget of an organic job")
    job_ttl_seconds: int = Field(7200, ge=60, description="how long finished job results are kept")
    job_lease_seconds: float = Field(
        15.0, gt=0, description="a job whose runner is silent this long is resumed"
    )
    job_max_attempts: int = Field(
        3, ge=1, description="runs of one job (first + resumes) before it is failed"
    )

    competition_participate: bool = Field(False, description="accept compression-competition invitations")
    competition_repository_url: str = Field(
        "", description="the solution repository sent when READY: https://github.com/OWNER/REPO.git"
    )
    competition_pat_env: str = Field(
        "MINER_COMPETITION_GITHUB_PAT",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the environment variable holding the GitHub PAT (read on every poll)",
    )
    competition_withdraw: bool = Field(
        False, description="answer every submission poll WITHDRAWN: leaves the competition for good"
    )

    @field_validator("validator_hotkeys", "upscaler_addrs", "compressor_addrs", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("competition_repository_url")
    @classmethod
    def _github_https_url(cls, value: str) -> str:
        value = value.strip()
        if value and not GITHUB_REPOSITORY_URL.fullmatch(value):
            message = "must look like https://github.com/OWNER/REPO.git (the form the subnet accepts)"
            if "@" in value:  # user info: perhaps a token, so the value is not repeated in the error
                raise PydanticCustomError(WITHHELD_INPUT, message + ", with no credentials in it")
            raise ValueError(message)
        return value

    @field_validator("upscaler_addrs", "compressor_addrs")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        bad = [address for address in value if not TARGET.fullmatch(address)]
        if bad:
            raise ValueError(f"not host:port or dns:///host:port: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySettings:
        if self.is_local and not self.validator_hotkeys:
            raise ValueError(
                "GATEWAY_NETWORK=local needs GATEWAY_VALIDATOR_HOTKEYS (comma-separated SS58 hotkeys)"
            )
        warranted = self.upscaler_addrs if self.warrant_task == "UPSCALING" else self.compressor_addrs
        if not warranted:
            kind = "UPSCALER" if self.warrant_task == "UPSCALING" else "COMPRESSOR"
            raise ValueError(f"warrant task {self.warrant_task} needs GATEWAY_{kind}_ADDRS")
        if self.owner_hotkey and not self.is_local:
            raise ValueError(
                "GATEWAY_OWNER_HOTKEY is for GATEWAY_NETWORK=local; on a chain the subnet owner is read from it"
            )
        if self.competition_withdraw and self.competition_participate:
            raise ValueError(
                "GATEWAY_COMPETITION_WITHDRAW leaves the competition for good; "
                "it cannot be combined with GATEWAY_COMPETITION_PARTICIPATE"
            )
        return self

    @property
    def is_local(self) -> bool:
        return self.network == LOCAL_NETWORK
