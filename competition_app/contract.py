"""The /compress request and response (subnet competition/contracts.py). The validator's own models forbid
extra keys; these accept them, so a field added upstream does not fail a whole batch. An item that does
not parse is refused alone (its result is null); the others still run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_ITEMS = 5


class Item(BaseModel):
    """One evaluation video. The SDK's warm-up sends no codec_mode or target_bitrate: CRF, no target."""

    model_config = ConfigDict(extra="ignore")

    evaluation_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    input_path: str = Field(min_length=1, max_length=4096)
    output_path: str = Field(min_length=1, max_length=4096)
    codec: str = "AV1"
    codec_mode: Literal["CRF", "VBR"] = "CRF"
    target_bitrate: int | None = Field(None, gt=0, le=1_000_000_000, description="bits per second")
    vmaf_threshold: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _consistent(self) -> Item:
        if self.codec.strip().upper() != "AV1":
            raise ValueError(f"codec must be AV1, got {self.codec!r}")
        if self.codec_mode == "VBR" and self.target_bitrate is None:
            raise ValueError("VBR needs a target_bitrate")
        return self

    @property
    def bitrate_mbps(self) -> float:
        return self.target_bitrate / 1e6 if self.codec_mode == "VBR" and self.target_bitrate else 0.0


def parse_items(body: Any) -> tuple[list[Item | None], list[str]]:
    """(one Item or None per requested item, in order; why each None was refused). A body that is not an
    object with a list of items has no items; more than MAX_ITEMS refuses them all."""
    raw = body.get("items") if isinstance(body, dict) else None
    if not isinstance(raw, list):
        return [], []
    if not raw or len(raw) > MAX_ITEMS:
        return [None] * len(raw), [f"a batch has 1-{MAX_ITEMS} items, got {len(raw)}"] * len(raw)
    items: list[Item | None] = []
    reasons: list[str] = []
    for entry in raw:
        try:
            items.append(Item.model_validate(entry))
            reasons.append("")
        except ValidationError as exc:
            items.append(None)
            reasons.append("; ".join(error["msg"] for error in exc.errors()))
    return items, reasons


def response(outputs: list[str | None]) -> dict[str, list[dict[str, str | None]]]:
    """Exactly {"results": [{"output_path": ...}, ...]}: one per item, in request order."""
    return {"results": [{"output_path": output} for output in outputs]}
