"""The deadline formula against the spec's worked examples (§4), the cgroup CPU count, the path rules on
their own, and publishing that never overwrites."""

from __future__ import annotations

from pathlib import Path

import pytest

from competition_app.budget import available_cpus, batch_timeout, usable_seconds, video_work
from competition_app.contract import MAX_ITEMS, Item, parse_items, response
from competition_app.paths import PathRefused, duplicates, resolve_input, resolve_output

HOUR = 3600.0


@pytest.mark.parametrize(("items", "floor", "expected"), [
    ([(30, 3840, 2160)] * 5, 180, 180),  # any batch of short <=4K videos: 120 s of work, +60 s grace
    ([(599, 3840, 2160)], 600, 600),  # the example manifest's floor wins
    ([(HOUR, 3840, 2160)], 180, 780),  # an hour of 4K: 6 x 120 s, +60 s
    ([(HOUR, 1920, 1080)], 180, 240),  # an hour of 1080p: 6 x 120 x 0.25 = 180, +60 s
    ([(HOUR, 3840, 2160), (HOUR, 1920, 1080), (10, 1280, 720)], 180, 780),  # five lanes: the heaviest counts
])
def test_batch_timeout_matches_the_spec(items, floor, expected):
    assert batch_timeout([video_work(*item) for item in items], floor) == expected


def test_more_items_than_lanes_share_a_lane():
    assert batch_timeout([120.0] * 6, 180) == 300  # two items in one lane: 240 + 60


def test_usable_seconds_keeps_the_margin_back():
    assert usable_seconds(180, 12, 0.08) == pytest.approx(180 - 12 - 14.4)
    assert usable_seconds(5, 12, 0.08) == 0.0


def test_available_cpus_reads_the_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("400000 100000\n", encoding="utf-8")
    assert available_cpus(tmp_path) == min(4, available_cpus(tmp_path / "none"))
    (tmp_path / "cpu.max").write_text("max 100000\n", encoding="utf-8")
    assert available_cpus(tmp_path) == available_cpus(tmp_path / "none") >= 1


@pytest.fixture()
def roots(tmp_path):
    inputs, outputs, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    for folder in (inputs / "inputs", outputs / "evaluations", outside):
        folder.mkdir(parents=True)
    (inputs / "inputs" / "a.mp4").write_bytes(b"x")
    (outside / "b.mp4").write_bytes(b"y")
    return inputs, outputs, outside


def test_good_paths_resolve(roots):
    inputs, outputs, _ = roots
    assert resolve_input(f"{inputs}/inputs/a.mp4", inputs) == (inputs / "inputs" / "a.mp4").resolve()
    assert resolve_output(f"{outputs}/evaluations/x.mp4", outputs) == (outputs / "evaluations" / "x.mp4").resolve()


def test_a_symlink_inside_the_input_root_that_stays_inside_is_read(roots):
    inputs, _, _ = roots
    (inputs / "inputs" / "same.mp4").symlink_to(inputs / "inputs" / "a.mp4")
    assert resolve_input(f"{inputs}/inputs/same.mp4", inputs) == (inputs / "inputs" / "a.mp4").resolve()


@pytest.mark.parametrize("raw", ["{o}/b.mp4", "{i}/../outside/b.mp4", "ftp://host/a.mp4", "a.mp4", "{i}/inputs/a\x00"])
def test_bad_inputs_are_refused(roots, raw):
    inputs, _, outside = roots
    with pytest.raises(PathRefused):
        resolve_input(raw.format(i=inputs, o=outside), inputs)


@pytest.mark.parametrize("raw", ["{o}/x.mp4", "{r}/evaluations/x.MOV", "{r}/evaluations/../x.mp4", "{r}/nope/x.mp4",
                                 "http://h/x.mp4", "x.mp4"])
def test_bad_outputs_are_refused(roots, raw):
    _, outputs, outside = roots
    with pytest.raises(PathRefused):
        resolve_output(raw.format(r=outputs, o=outside), outputs)


def test_duplicates_are_every_repeated_path():
    a, b = Path("/o/a.mp4"), Path("/o/b.mp4")
    assert duplicates([a, b, None, a]) == {a}


def test_items_parse_one_by_one():
    good = {"input_path": "/in/a.mp4", "output_path": "/out/a.mp4", "vmaf_threshold": 89}
    items, reasons = parse_items({"items": [good, {**good, "codec": "H264"}, {**good, "future_field": 1}]})
    assert isinstance(items[0], Item) and items[0].codec_mode == "CRF" and items[0].bitrate_mbps == 0
    assert items[1] is None and "AV1" in reasons[1]
    assert isinstance(items[2], Item)
    vbr = Item.model_validate({**good, "codec_mode": "VBR", "target_bitrate": 8_000_000})
    assert vbr.bitrate_mbps == 8.0
    assert parse_items({"items": [good] * (MAX_ITEMS + 1)})[0] == [None] * (MAX_ITEMS + 1)
    assert response(["/out/a.mp4", None]) == {"results": [{"output_path": "/out/a.mp4"}, {"output_path": None}]}


def test_publish_moves_and_never_overwrites(tmp_path):
    from competition_app.item import publish

    scratch, outputs = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    outputs.mkdir()
    (scratch / "final.mp4").write_bytes(b"new")
    publish(scratch / "final.mp4", outputs / "a.mp4")
    assert (outputs / "a.mp4").read_bytes() == b"new" and not (scratch / "final.mp4").exists()
    (scratch / "again.mp4").write_bytes(b"newer")
    with pytest.raises(FileExistsError):
        publish(scratch / "again.mp4", outputs / "a.mp4")
    assert (outputs / "a.mp4").read_bytes() == b"new"
    assert sorted(path.name for path in outputs.iterdir()) == ["a.mp4"]
