"""The JSON report has one entry per item with the keys operators script against, and the demo's exit
status tells "the mesh did not answer" apart from "an item failed a gate"."""

from __future__ import annotations

import json

from rich.console import Console

from mesh.gates import Gate
from vidaio_cli.demo import EXIT_GATE_FAILED, EXIT_NO_ANSWER, exit_code
from vidaio_cli.scorecard import ItemResult, RoundReport, print_scorecard

REQUIRED_KEYS = {"route", "task", "gates_passed", "vmaf", "vmaf_neg", "predicted_score", "seconds"}


def passing(route: str, index: int) -> ItemResult:
    return ItemResult(route, "SD24K (×4)", index, 12.345, url="http://127.0.0.1:9/x.mp4",
                      gates=[Gate("codec", True, "hevc")], vmaf=71.234, predicted_score=None)


def report(*items: ItemResult, errors: dict[str, str] | None = None) -> RoundReport:
    return RoundReport("head", "5Abc… at 127.0.0.1:8091", "UPSCALING", 5, list(items), errors or {})


def test_report_has_one_entry_per_item_with_the_documented_keys(tmp_path):
    round_report = report(passing("VideoUpscalingProtocol", 0), passing("VideoCompressionProtocol", 0))
    written = json.loads(round_report.write(tmp_path / "r.json").read_text())
    assert len(written["items"]) == 2
    for entry in written["items"]:
        assert REQUIRED_KEYS <= entry.keys()
    assert [e["route"] for e in written["items"]] == ["VideoUpscalingProtocol", "VideoCompressionProtocol"]
    assert written["items"][0]["vmaf"] == 71.23 and written["items"][0]["seconds"] == 12.35
    assert written["all_gates_passed"] is True and written["mesh_answered"] is True


def test_an_item_without_url_is_a_mesh_failure():
    missing = ItemResult("VideoUpscalingProtocol", "HD24K (×2)", 1, 3.0, error="no URL returned for this item")
    round_report = report(passing("VideoUpscalingProtocol", 0), missing)
    assert not missing.gates_passed and not round_report.mesh_answered
    assert exit_code(round_report) == EXIT_NO_ANSWER
    assert exit_code(report(errors={"VideoCompressionProtocol": "HTTP 408: timeout"})) == EXIT_NO_ANSWER


def test_a_failed_gate_is_its_own_exit_status():
    failing = passing("VideoCompressionProtocol", 0)
    failing.gates.append(Gate("bitrate_cap", False, "11 Mbps (cap 5.5)"))
    assert exit_code(report(passing("VideoUpscalingProtocol", 0), failing)) == EXIT_GATE_FAILED
    assert exit_code(report(passing("VideoUpscalingProtocol", 0))) == 0


def test_scorecard_names_the_failed_gate_and_keeps_brackets_literal():
    failing = passing("VideoCompressionProtocol", 2)
    failing.gates.append(Gate("bitrate_cap", False, "11 Mbps (cap 5.5)"))
    failing.notes.append("install '.[pieapp]'")
    console = Console(record=True, width=160)
    print_scorecard(console, report(failing))
    text = console.export_text()
    assert "bitrate_cap" in text and "11 Mbps (cap 5.5)" in text and "FAILED" in text
    assert "'.[pieapp]'" in text
    assert "0/1 items passed every validator gate" in text
