"""What a validator round found, for people (a rich scorecard) and for machines (a JSON report).

One `ItemResult` per video item. `seconds` is the validator's wait for the synapse that carried the item
(the miner answers a 5-item bundle at once, so every item of a bundle shares it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
                        ("seconds (miner)", _fmt(item.seconds, 1)), ("seconds (scoring)", _fmt(item.scoring_seconds, 1))):
        table.add_row(f"[bold]{name}[/]", "", value)
    for note in item.notes:
        table.add_row("[dim]note[/]", "", f"[dim]{escape(note)}[/]")
    return table


def summary_table(report: RoundReport) -> Table:
    table = Table(title="Round summary", title_justify="left", header_style="bold")
    for column, justify in (("route", "left"), ("#", "right"), ("task", "left"), ("gates", "center"),
                            ("VMAF", "right"), ("VMAF-NEG", "right"), ("ratio", "right"),
                            ("predicted", "right"), ("seconds", "right")):
        table.add_column(column, justify=justify)
    for item in report.items:
        table.add_row(item.route, str(item.index), item.task,
                      "[green]pass[/]" if item.gates_passed else "[red]fail[/]", _fmt(item.vmaf),
                      _fmt(item.vmaf_neg), _fmt(item.ratio), _fmt(item.predicted_score, 4), _fmt(item.seconds, 1))
    return table


def print_scorecard(console: Console, report: RoundReport) -> None:
    console.rule(f"Validator round ({report.era} protocol) against {report.miner}")
    console.print(f"TaskWarrantProtocol → {report.warrant_task or 'no answer'}; "
                  f"LengthCheckProtocol → {report.content_length or 'no answer'}")
    for route, error in report.synapse_errors.items():
        console.print(f"[red]{route}: {escape(error)}[/]")
    for item in report.items:
        console.print(item_table(item))
    console.print(summary_table(report))
    passed = sum(item.gates_passed for item in report.items)
    colour = "green" if passed == len(report.items) and report.items else "red"
    console.print(f"[bold {colour}]{passed}/{len(report.items)} items passed every validator gate[/]")
