"""COMPETITION_* settings. The sandbox sets COMPETITION_INPUT_ROOT and COMPETITION_OUTPUT_ROOT itself."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# search: a verified search within the deadline (a manifest without a cost term, like comp-01); lean: a small
# proxy search and one encode at the fastest preset, not measured (when the cost term counts).
Policy = Literal["search", "lean"]


class CompetitionSettings(BaseSettings):
    """Every field is read from COMPETITION_<NAME>; a bad value stops the process at start."""

    model_config = SettingsConfigDict(env_prefix="COMPETITION_", extra="ignore", validate_default=True)

    input_root: Path = Field(Path("/evaluation-inputs"), description="inputs are read only from under here")
    output_root: Path = Field(Path("/output"), description="outputs are written only under here")
    scratch_dir: Path = Field(Path(tempfile.gettempdir()), description="work files (never under the output root)")
    deadline_floor_seconds: float = Field(180.0, gt=0, description="the smallest batch timeout a manifest sets")
    batch_timeout_seconds: float = Field(0.0, ge=0, description="the batch timeout when known; 0 = the formula's")
    margin_seconds: float = Field(12.0, ge=0, description="kept back from the deadline for the mux and the move")
    margin_fraction: float = Field(0.08, ge=0, lt=0.5, description="kept back too, as a share of the deadline")
    fallback_share: float = Field(0.2, ge=0, le=0.999, description="of an item's time, kept for the fast encode")
    direct_min_seconds: float = Field(60.0, ge=0, description="inputs this long are first timed on a fast encode")
    direct_share: float = Field(0.35, ge=0, le=1,
                                description="when the fast encode alone needs more of an item's time, no search")
    cpus: int = Field(0, ge=0, le=256, description="cores to use; 0 = what the cgroup allows")
    allow_hardware: bool = Field(True, description="NVENC where it really opens, SVT-AV1 otherwise")
    policy: Policy = Field("search", description="how much each item may spend: search or lean (above)")
