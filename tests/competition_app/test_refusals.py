"""Every path form the service refuses (spec §3.3), through the real service: the item's result is null,
the answer is still HTTP 200 with exactly one result per item, and nothing is written anywhere. No item
here reaches an encoder, so these run in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.competition_app.conftest import make_clip


@pytest.fixture(scope="module")
def layout(service):
    """A real clip inside the input root and one outside it, and symlinks that lead out of the roots."""
    inputs = service.inputs / "inputs"
    make_clip(inputs / "clip.mp4", seconds=1, size="160x120")
    make_clip(service.outside / "secret.mp4", seconds=1, size="160x120")
    (inputs / "escape.mp4").symlink_to(service.outside / "secret.mp4")
    (inputs / "escape-dir").symlink_to(service.outside)
    (inputs / "notes.txt").write_text("not a video", encoding="utf-8")
    (service.outputs / "out-link").symlink_to(service.outside)
    (service.outputs / "alias").symlink_to(service.outputs / "evaluations")
    (service.outputs / "evaluations" / "dangling.mp4").symlink_to(service.outside / "new.mp4")
    (service.outputs / "evaluations" / "taken.mp4").write_bytes(b"an earlier output")
    return service


def _refused_items(s) -> dict[str, dict]:
    clip = str(s.inputs / "inputs" / "clip.mp4")
    out = str(s.outputs / "evaluations" / "ok.mp4")
    cases = {
        "input traversal": {"input_path": f"{s.inputs}/inputs/../../outside/secret.mp4"},
        "input traversal that stays inside": {"input_path": f"{s.inputs}/inputs/../inputs/clip.mp4"},
        "input symlink escape": {"input_path": str(s.inputs / "inputs" / "escape.mp4")},
        "input directory symlink escape": {"input_path": str(s.inputs / "inputs" / "escape-dir" / "secret.mp4")},
        "input http url": {"input_path": "http://127.0.0.1:9/clip.mp4"},
        "input file url": {"input_path": f"file://{clip}"},
        "input s3 url": {"input_path": "s3://bucket/clip.mp4"},
        "input absolute outside the root": {"input_path": str(s.outside / "secret.mp4")},
        "input relative": {"input_path": "inputs/clip.mp4"},
        "input with a NUL byte": {"input_path": clip + "\x00.mp4"},
        "input missing": {"input_path": str(s.inputs / "inputs" / "missing.mp4")},
        "input is a directory": {"input_path": str(s.inputs / "inputs")},
        "input is not a video": {"input_path": str(s.inputs / "inputs" / "notes.txt")},
        "output traversal": {"output_path": f"{s.outputs}/evaluations/../../outside/x.mp4"},
        "output through a symlink out": {"output_path": str(s.outputs / "out-link" / "x.mp4")},
        "output through a symlink inside": {"output_path": str(s.outputs / "alias" / "x.mp4")},
        "output is a dangling symlink": {"output_path": str(s.outputs / "evaluations" / "dangling.mp4")},
        "output exists": {"output_path": str(s.outputs / "evaluations" / "taken.mp4")},
        "output https url": {"output_path": "https://example.com/x.mp4"},
        "output absolute outside the root": {"output_path": str(s.outside / "x.mp4")},
        "output relative": {"output_path": "evaluations/x.mp4"},
        "output not mp4": {"output_path": str(s.outputs / "evaluations" / "x.mkv")},
        "output directory missing": {"output_path": str(s.outputs / "missing" / "x.mp4")},
        "output is the root": {"output_path": str(s.outputs)},
        "codec not AV1": {"codec": "HEVC"},
        "VBR without a bitrate": {"codec_mode": "VBR", "target_bitrate": None},
        "unknown mode": {"codec_mode": "CBR"},
        "threshold out of range": {"vmaf_threshold": 150.0},
        "bad evaluation id": {"evaluation_id": "../x"},
    }
    base = {"evaluation_id": "ok", "input_path": clip, "output_path": out, "codec": "AV1", "codec_mode": "CRF",
            "target_bitrate": None, "vmaf_threshold": 85.0}
    return {"control": base} | {name: {**base, **change} for name, change in cases.items()}


def _snapshot(s) -> dict[Path, bytes]:
    roots = (s.outputs, s.outside, s.inputs)
    return {path: path.read_bytes() for root in roots for path in root.rglob("*")
            if path.is_file() and not path.is_symlink()}


def test_every_refused_form_is_null_and_writes_nothing(layout):
    before = _snapshot(layout)
    items = _refused_items(layout)
    control = items.pop("control")
    names = list(items)
    for start in range(0, len(names), 5):  # batches of up to five, as the validator sends
        chunk = names[start:start + 5]
        response = layout.compress({"items": [items[name] for name in chunk]})
        assert response.status_code == 200, chunk
        assert response.json() == {"results": [{"output_path": None}] * len(chunk)}, chunk
    assert _snapshot(layout) == before
    assert not os.path.lexists(layout.outputs / "evaluations" / "ok.mp4")
    assert not os.path.lexists(layout.outside / "new.mp4")
    # The control: the same item unchanged is accepted, so each refusal above is the change's doing.
    response = layout.compress({"items": [control]})
    assert response.json() == {"results": [{"output_path": control["output_path"]}]}
    assert Path(control["output_path"]).is_file()


def test_duplicate_outputs_refuse_every_item_that_names_them(layout):
    clip = str(layout.inputs / "inputs" / "clip.mp4")
    out = str(layout.outputs / "evaluations" / "twice.mp4")
    same = {"input_path": clip, "output_path": out, "codec": "AV1", "vmaf_threshold": 85.0}
    before = _snapshot(layout)
    response = layout.compress({"items": [{**same, "evaluation_id": "a"}, {**same, "evaluation_id": "b"}]})
    assert response.status_code == 200
    assert response.json() == {"results": [{"output_path": None}, {"output_path": None}]}
    assert _snapshot(layout) == before and not os.path.lexists(out)


@pytest.mark.parametrize(("raw", "expected"), [
    (b"not json", {"results": []}),
    (b"[1, 2]", {"results": []}),
    (b'{"items": "none"}', {"results": []}),
    (b'{"items": []}', {"results": []}),
    (b'{"items": [1, 2, 3, 4, 5, 6]}', {"results": [{"output_path": None}] * 6}),
    (b'{"items": [{"input_path": 3}]}', {"results": [{"output_path": None}]}),
])
def test_malformed_requests_still_get_200_and_the_exact_shape(layout, raw, expected):
    response = layout.compress(None, raw=raw)
    assert response.status_code == 200
    assert response.json() == expected


def test_a_get_on_compress_is_not_a_route(layout):
    assert httpx.get(f"{layout.url}/compress", timeout=10).status_code == 405
