"""What a validator round found, for people (a rich scorecard) and for machines (a JSON report).

One `ItemResult` per video item. `seconds` is the validator's wait for the synapse that carried the item
(the miner answers a 5-item bundle at once, so every item of a bundle shares it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mesh.gates import Gate


@dataclass
class ItemResult:
    route: str
    task: str
    index: int
    seconds: float | None
    url: str = ""
    gates: list[Gate] = field(default_factory=list)
    vmaf: float | None = None
    vmaf_neg: float | None = None
    ratio: float | None = None
    predicted_score: float | None = None
    scoring_seconds: float = 0.0
    details: dict[str, float | str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def answered(self) -> bool:
        return bool(self.url)

    @property
    def gates_passed(self) -> bool:
        return self.answered and not self.error and bool(self.gates) and all(gate.passed for gate in self.gates)

    def to_json(self) -> dict:
        return {
            "route": self.route, "task": self.task, "gates_passed": self.gates_passed,
            "vmaf": _rounded(self.vmaf), "vmaf_neg": _rounded(self.vmaf_neg),
            "predicted_score": _rounded(self.predicted_score, 4), "seconds": _rounded(self.seconds),
            "index": self.index, "url": self.url, "ratio": _rounded(self.ratio),
            "scoring_seconds": round(self.scoring_seconds, 2),
            "gates": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in self.gates],
            "details": self.details, "notes": self.notes, "error": self.error,
        }


@dataclass
class RoundReport:
    """A whole round: the handshake answers, then every item of every synapse."""

    era: str
    miner: str
    warrant_task: str | None
    content_length: int | None
    items: list[ItemResult]
    synapse_errors: dict[str, str] = field(default_factory=dict)

    @property
    def mesh_answered(self) -> bool:
        return not self.synapse_errors and all(item.answered for item in self.items)

    @property
    def all_gates_passed(self) -> bool:
        return bool(self.items) and all(item.gates_passed for item in self.items)

    def to_json(self) -> dict:
        return {"era": self.era, "miner": self.miner, "warrant_task": self.warrant_task,
                "content_length": self.content_length, "mesh_answered": self.mesh_answered,
                "all_gates_passed": self.all_gates_passed, "synapse_errors": self.synapse_errors,
                "items": [item.to_json() for item in self.items]}

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def item_table(item: ItemResult) -> Table:
    """One item: every gate with its detail, then the measured figures."""
    status = "[green]passed[/]" if item.gates_passed else "[red]FAILED[/]"
    table = Table(title=f"{item.route} #{item.index} · {item.task} · {status}", title_justify="left",
                  show_header=True, header_style="bold", expand=False)
    table.add_column("check")
    table.add_column("result", justify="center")
    table.add_column("detail", overflow="fold")
    if item.error:
        table.add_row("answer", "[red]✗[/]", escape(item.error))
    for gate in item.gates:
        table.add_row(gate.name, "[green]✓[/]" if gate.passed else "[red]✗[/]", escape(gate.detail))
    for name, value in (("VMAF", _fmt(item.vmaf)), ("VMAF-NEG", _fmt(item.vmaf_neg)),
                        ("ratio", _fmt(item.ratio)), ("predicted score", _fmt(item.predicted_score, 4)),
                        ("seconds (miner)", _fmt(item.seconds, 1)),
                        ("seconds (scoring)", _fmt(item.scoring_seconds, 1))):
        table.add_row(f"[bold]{name}[/]", "", value)
    for note in item.notes:
        table.add_row("[dim]note[/]", "", f"[dim]{escape(note)}[/]")
    return table


_ROUTE_LABELS = {"VideoUpscalingProtocol": "up", "VideoCompressionProtocol": "comp"}
_THRESHOLD = re.compile(r"\s*\bT=(\d+(?:\.\d+)?)")
SUMMARY_CAPTION = ("VMAF vs T: upscaling VMAF; compression VMAF-NEG (Era A: VMAF) against the threshold T. "
                   "Every gate's detail is in the JSON report.")


def _label(item: ItemResult) -> str:
    return f"{_ROUTE_LABELS.get(item.route, item.route)} #{item.index}"


def _labels(items: list[ItemResult]) -> str:
    """The items one note applies to, e.g. "up #0,1,3, comp #0-4"."""
    by_route: dict[str, list[int]] = {}
    for item in items:
        by_route.setdefault(_ROUTE_LABELS.get(item.route, item.route), []).append(item.index)
    parts = []
    for route, indices in by_route.items():
        indices = sorted(set(indices))
        contiguous = len(indices) > 2 and indices[-1] - indices[0] == len(indices) - 1
        parts.append(f"{route} #{indices[0]}-{indices[-1]}" if contiguous else
                     f"{route} #{','.join(map(str, indices))}")
    return ", ".join(parts)


def _split_threshold(task: str) -> tuple[str, float | None]:
    """("hevc VBR 5 Mbps", 85.0) from "hevc VBR T=85 5 Mbps": T gets its own column."""
    match = _THRESHOLD.search(task)
    if match is None:
        return task, None
    return " ".join(f"{task[:match.start()]} {task[match.end():]}".split()), float(match.group(1))


def _quality(item: ItemResult, threshold: float | None) -> str:
    """Upscaling: VMAF. Compression: VMAF-NEG (VMAF when only that was measured) against T."""
    if threshold is None:
        return _fmt(item.vmaf)
    value = item.vmaf_neg if item.vmaf_neg is not None else item.vmaf
    if value is None:
        return f"— vs {threshold:g}"
    return f"{value:.2f} {'≥' if value >= threshold else '<'} {threshold:g}"


def _gates_cell(item: ItemResult) -> str:
    """The gates cell: "ok", or the first failed gate (+ how many more failed); details follow the table."""
    if item.error:
        return "[red]✗ no answer[/]"
    if not item.gates:
        return "[red]✗ none ran[/]"
    failed = [gate.name for gate in item.gates if not gate.passed]
    if not failed:
        return "[green]ok[/]"
    more = f" +{len(failed) - 1}" if len(failed) > 1 else ""
    return f"[red]✗ {escape(failed[0])}{more}[/]"


def _one_line(markup: str) -> Text:
    """A cell that never wraps: cut with an ellipsis when its column is narrowed to fit the terminal."""
    text = Text.from_markup(markup, overflow="ellipsis")
    text.no_wrap = True
    return text


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}" if abs(value) < 10 else f"{value:.0f}"


def summary_table(report: RoundReport) -> Table:
    """One line per item, narrow enough for an 80-column terminal: no cell wraps (on a narrower terminal
    the task and gates cells are cut with an ellipsis); failed gates are named here, detailed by
    `details_table`."""
    table = Table(title="Round summary", title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), caption=SUMMARY_CAPTION,
                  caption_justify="left")
    # Only task and gates may be narrowed (their cells are cut, never wrapped); figures keep their width.
    for column, justify, narrowable in (("item", "left", False), ("task", "left", True),
                                        ("gates", "left", True), ("VMAF vs T", "right", False),
                                        ("ratio", "right", False), ("score", "right", False),
                                        ("secs", "right", False)):
        table.add_column(column, justify=justify, no_wrap=not narrowable, overflow="ellipsis")
    for item in report.items:
        task, threshold = _split_threshold(item.task)
        table.add_row(_label(item), _one_line(escape(task)), _one_line(_gates_cell(item)),
                      _quality(item, threshold), _fmt(item.ratio), _score(item.predicted_score),
                      _fmt(item.seconds, 1))
    return table


def details_table(report: RoundReport) -> Table | None:
    """Why each failed item failed (every failed gate with its detail), then each distinct note once with
    the items it applies to. Long text wraps between words, under its own column."""
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for item in report.items:
        if item.gates_passed:
            continue
        reasons = [item.error] if item.error else []
        reasons += [f"{gate.name}: {gate.detail}" for gate in item.gates if not gate.passed]
        if not reasons and not item.gates:
            reasons = ["no gate ran"]
        table.add_row(_label(item), f"[red]FAILED[/] {escape('; '.join(reasons))}")
    notes: dict[str, list[ItemResult]] = {}
    for item in report.items:
        for note in item.notes:
            notes.setdefault(note, []).append(item)
    for note, items in notes.items():
        table.add_row(f"[dim]{_labels(items)}[/]", f"[dim]note: {escape(note)}[/]")
    return table if table.row_count else None


def print_scorecard(console: Console, report: RoundReport) -> None:
    """The round for a person: the handshakes, one summary line per item, then why items failed and the
    notes. Fits an 80-column terminal; the JSON report (`RoundReport.write`) keeps every detail."""
    console.rule(f"Validator round ({report.era} protocol)")
    console.print(f"miner: {escape(report.miner)}")
    console.print(f"TaskWarrantProtocol → {report.warrant_task or 'no answer'}; "
                  f"LengthCheckProtocol → {report.content_length or 'no answer'}")
    for route, error in report.synapse_errors.items():
        console.print(f"[red]{escape(route)}: {escape(error)}[/]")
    console.print(summary_table(report))
    details = details_table(report)
    if details is not None:
        console.print(details)
    passed = sum(item.gates_passed for item in report.items)
    colour = "green" if passed == len(report.items) and report.items else "red"
    console.print(f"[bold {colour}]{passed}/{len(report.items)} items passed every validator gate[/]")
