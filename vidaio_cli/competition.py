"""`vidaio-mesh competition export|check`: build the compression-competition entry and preflight it locally.

The work lives in competition_export (the tree), competition_vendor (what the image needs), competition_rules (the
subnet's static validation) and competition_preflight (the service run); they load only when a command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

competition = typer.Typer(help="The compression competition: export the solution repository and check it.",
                          no_args_is_help=True)


def _report(findings: list, *, ran_service: bool) -> None:
    from vidaio_cli.competition_rules import ACCEPTED, verdict

    for finding in findings:
        typer.echo(str(finding))
    result = verdict(findings)
    scope = "static rules and the warm-up run" if ran_service else "static rules only"
    typer.echo(f"{result} ({scope})")
    if result != ACCEPTED:
        raise typer.Exit(1)


@competition.command()
def export(
    subnet_repo: Annotated[Path, typer.Option(help="The operator's checkout of the subnet repository (for the two "
                                                   "canonical SDK files).", file_okay=False, exists=True)],
    out: Annotated[Path, typer.Option(help="Where to write the solution repository (absent, empty, or a clone "
                                           "holding only .git).")],
    gpu: Annotated[str | None, typer.Option(help="sandbox_resources.gpu: L4, L40S or RTX-PRO-6000.")] = None,
    cpus: Annotated[int | None, typer.Option(help="sandbox_resources.cpus, 1-32.")] = None,
    app: Annotated[str, typer.Option(help="The ASGI app to serve, module:attribute.")] = "competition_app.app:app",
    vendor: Annotated[str, typer.Option(help="Comma-separated packages the app may draw modules from; the app's "
                                             "own package is copied whole.")] = "competition_app,compressor_svc,mesh",
    source_root: Annotated[list[Path] | None, typer.Option(help="Where those packages live (default: this "
                                                                "repository); repeatable.")] = None,
    replace: Annotated[bool, typer.Option(help="Clear an existing export (everything but .git) first.")] = False,
    sdk_extras: Annotated[bool, typer.Option(help="Also copy the Modal build script and the warm-up fixture (a "
                                                  "binary clip) that the subnet SDK's own validate needs.")] = False,
    policy: Annotated[str, typer.Option(help="search: a verified search within the deadline, for a manifest "
                                             "without a cost term (comp-01); lean: a small proxy search and one "
                                             "encode, when cost counts (docs/competition.md).")] = "search",
) -> None:
    """Write the solution repository (competition spec §2) and check it with the subnet's static rules."""
    from vidaio_cli.competition_export import ExportRefused, export_solution
    from vidaio_cli.competition_vendor import REPO_ROOT, AppSpec, VendorError

    spec = AppSpec(app=app, vendored=tuple(name.strip() for name in vendor.split(",") if name.strip()),
                   source_roots=tuple(path.resolve() for path in source_root or [REPO_ROOT]))
    try:
        result = export_solution(subnet_repo, out, gpu=gpu, cpus=cpus, spec=spec, replace=replace,
                                 with_sdk_extras=sdk_extras, policy=policy)
    except (ExportRefused, VendorError) as exc:
        typer.echo(f"export refused: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {result.files} files to {result.out} ({len(result.requirements)} pinned requirements)")
    _report(result.findings, ran_service=False)
    typer.echo(f"next: vidaio-mesh competition check {result.out}")


@competition.command()
def check(
    solution: Annotated[Path, typer.Argument(help="The solution repository's root.", file_okay=False, exists=True)],
    static_only: Annotated[bool, typer.Option(help="Apply the static rules only; do not start the service.")] = False,
    health_timeout: Annotated[float, typer.Option(help="Seconds /health may take (the validator allows 300).")] = 300,
    compress_timeout: Annotated[float, typer.Option(help="Seconds the warm-up batch may take.")] = 180,
) -> None:
    """Apply the subnet's static validation (spec §2.4), then run the service on the warm-up clip (spec §3.4).
    Prints each rejection code with its file and line, then ACCEPTED, REVIEW_REQUIRED or REJECTED."""
    from vidaio_cli.competition_rules import REJECTED, validate, verdict

    findings = validate(solution)
    if static_only or verdict(findings) == REJECTED:
        _report(findings, ran_service=False)
        return
    from vidaio_cli.competition_preflight import run_preflight

    findings += run_preflight(solution, health_timeout=health_timeout, compress_timeout=compress_timeout)
    _report(findings, ran_service=True)


def register(app: typer.Typer) -> None:
    app.add_typer(competition, name="competition")
