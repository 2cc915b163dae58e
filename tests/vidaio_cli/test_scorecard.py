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


PIEAPP_NOTE = ("PIE-APP needs torch and the pretrained weights: install '.[pieapp]' (offline: set "
               "VIDAIO_PIEAPP_WEIGHTS); score shown as gates + VMAF only (S_F would lie in [0.000, 0.284] "
               "for L=5)")
DETECTOR_NOTE = "not reproduced: the validator's tone-manipulation and chroma-energy detectors"
BITRATE_DETAIL = "13.9 Mbps (cap 13.75 = 1.10 × 12.5 Mbps target, measured over the whole file)"
TIMEOUT_ERROR = "HTTP 408: the miner did not answer within 120.0 s (VideoCompressionProtocol timeout)"
ALL_ITEM_KEYS = REQUIRED_KEYS | {"index", "url", "ratio", "scoring_seconds", "gates", "details", "notes",
                                 "error"}


def realistic_round() -> RoundReport:
    """A head round as the demo plays it: 5 upscaling + 5 compression items, three failures with long
    details, and the notes every item of a kind carries."""
    encoding = ["decodable", "resolution", "size_cap", "codec", "container", "profile", "pix_fmt", "fps"]

    def upscaled(index: int, task: str, vmaf: float) -> ItemResult:
        gates = [Gate(name, True, "ok") for name in encoding]
        gates.append(Gate("vmaf_floor", vmaf >= 50, f"{vmaf:.2f} (zero below 50)"))
        url = f"http://127.0.0.1:9/up-{index}.mp4"
        return ItemResult("VideoUpscalingProtocol", task, index, 41.27, url=url, gates=gates, vmaf=vmaf,
                          predicted_score=None if vmaf >= 50 else 0.0, scoring_seconds=3.2,
                          details={"vmaf_sample": "frames [3, 17, 42]", "s_l": 0.3112},
                          notes=[PIEAPP_NOTE] if vmaf >= 50 else [])

    def compressed(index: int, task: str, vmaf_neg: float | None, ratio: float | None, score: float,
                   failed: tuple[tuple[str, str], ...] = ()) -> ItemResult:
        gates = [Gate("codec", True, "av1 (want av1)")]
        gates += [Gate(name, False, detail) for name, detail in failed]
        url = f"http://127.0.0.1:9/comp-{index}.mp4"
        return ItemResult("VideoCompressionProtocol", task, index, 118.43, url=url,
                          gates=gates, vmaf=None if vmaf_neg is None else vmaf_neg + 1.2, vmaf_neg=vmaf_neg,
                          ratio=ratio, predicted_score=score, details={"compression_rate": 0.1529},
                          notes=[DETECTOR_NOTE])

    unanswered = compressed(3, "vp9 CRF T=80", None, None, 0.0)
    unanswered.url, unanswered.error, unanswered.gates, unanswered.notes = "", TIMEOUT_ERROR, [], []
    items = [
        upscaled(0, "SD24K (×4)", 93.451), upscaled(1, "HD24K (×2)", 95.2), upscaled(2, "SD24K (×4)", 41.3),
        upscaled(3, "SD2HD (×2)", 97.02), upscaled(4, "4K28K (×2)", 88.8),
        compressed(0, "av1 CRF T=89", 90.12, 6.54, 0.8123),
        compressed(1, "hevc VBR T=85 5.5 Mbps", 83.1, 11.2, 0.2311),
        compressed(2, "h264 CBR T=93 12.5 Mbps", 88.0, 1.1, 0.0,
                   (("bitrate_cap", BITRATE_DETAIL), ("compression_ratio", "1.10x (need > 1.25)"),
                    ("vmaf_neg_floor", "88.00 (zero below 88.00)"))),
        unanswered,
        compressed(4, "av1 VBR T=89 10 Mbps", 91.0, 123.45, 1.2345),
    ]
    return RoundReport("head", "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty at 127.0.0.1:8091",
                       "UPSCALING", 5, items)


def test_scorecard_fits_an_80_column_terminal_one_line_per_item(tmp_path):
    round_report = realistic_round()
    console = Console(record=True, width=80)
    print_scorecard(console, round_report)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80

    # The summary: a header, a rule, then exactly one line per item, in order (no cell wrapped onto a second
    # line), each carrying its task, gate verdict and figures; the caption follows at once.
    rule = next(i for i, line in enumerate(lines) if line.startswith("─────") and "Validator" not in line)
    assert lines[rule - 1].split() == ["item", "task", "gates", "VMAF", "vs", "T", "ratio", "score", "secs"]
    rows = lines[rule + 1:rule + 11]
    expected = [
        ("up #0", "SD24K (×4)", "ok", "93.45", "41.3"),
        ("up #1", "HD24K (×2)", "ok", "95.20", "41.3"),
        ("up #2", "SD24K (×4)", "✗ vmaf_floor", "41.30", "0.0000"),
        ("up #3", "SD2HD (×2)", "ok", "97.02", "41.3"),
        ("up #4", "4K28K (×2)", "ok", "88.80", "41.3"),
        ("comp #0", "av1 CRF", "ok", "90.12 ≥ 89", "6.54", "0.8123", "118.4"),
        ("comp #1", "hevc VBR 5.5 Mbps", "ok", "83.10 < 85", "11.20", "0.2311"),
        ("comp #2", "h264 CBR 12.5 Mbps", "✗ bitrate_cap +2", "88.00 < 93", "1.10", "0.0000"),
        ("comp #3", "vp9 CRF", "✗ no answer", "— vs 80", "0.0000", "118.4"),
        ("comp #4", "av1 VBR 10 Mbps", "ok", "91.00 ≥ 89", "123.45", "1.2345", "118.4"),
    ]
    for row, figures in zip(rows, expected, strict=True):
        assert row.startswith(figures[0] + " "), row
        assert all(figure in row for figure in figures), (row, figures)
        assert "…" not in row, f"a cell was cut at 80 columns: {row!r}"
    assert lines[rule + 11].startswith("VMAF vs T:")

    # Below it, why items failed and each note once; long text wraps between words, never inside one.
    text = " ".join(" ".join(lines).split())
    for reason in ("up #2 FAILED vmaf_floor: 41.30 (zero below 50)",
                   f"comp #2 FAILED bitrate_cap: {BITRATE_DETAIL}; compression_ratio: 1.10x (need > 1.25); "
                   "vmaf_neg_floor: 88.00 (zero below 88.00)",
                   f"comp #3 FAILED {TIMEOUT_ERROR}",
                   f"up #0,1,3,4 note: {PIEAPP_NOTE}", f"comp #0,1,2,4 note: {DETECTOR_NOTE}"):
        assert reason in text, reason
    assert text.count(DETECTOR_NOTE) == 1, "a note shared by four items is printed once"
    assert "7/10 items passed every validator gate" in text
    assert "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty at 127.0.0.1:8091" in text

    # The JSON report still carries every field of every item, gate details included.
    written = json.loads(round_report.write(tmp_path / "demo-report.json").read_text())
    assert all(entry.keys() == ALL_ITEM_KEYS for entry in written["items"])
    bitrate_gate = {"name": "bitrate_cap", "passed": False, "detail": BITRATE_DETAIL}
    assert written["items"][7]["gates"][1] == bitrate_gate
    assert written["items"][0]["details"] == {"vmaf_sample": "frames [3, 17, 42]", "s_l": 0.3112}
    assert written["items"][8]["error"] == TIMEOUT_ERROR and written["items"][5]["notes"] == [DETECTOR_NOTE]
