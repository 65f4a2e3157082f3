"""`byline reindex` and `byline doctor`: rebuilding the vectors from the catalog, and checking (and repairing)
the index against it."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli import common
from bot.cli.common import settings_from, user_errors

if TYPE_CHECKING:
    from ingest.maintenance import Diagnosis


def reindex(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Rebuild the vectors from the catalog's chunk texts with the configured model (resumes if interrupted).

    Example: byline reindex
    """
    settings = settings_from(ctx)
    with user_errors():
        byline = common.open_byline(settings)
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            with Progress("chunks", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
                task = bar.add_task("reindex", total=None)
                report = byline.reindex(lambda done, total: bar.update(task, completed=done, total=total))
        else:
            report = byline.reindex()
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    resumed = " (resumed)" if report.resumed else ""
    typer.echo(
        f"reindexed {report.articles} articles{resumed} · {report.chunks} chunks, {report.embedded} embedded now · "
        f"{report.orphans} orphans removed · {report.seconds:.1f} s"
    )
    if report.dropped_store:
        typer.echo("the vector store could not be opened and was rebuilt from scratch", err=True)


def doctor(
    ctx: typer.Context,
    fix: Annotated[bool, typer.Option("--fix", help="Repair what can be repaired here, then check again.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check the index: catalog chunks = vectors = lexical rows, no orphans, database integrity, Chroma readable,
    no interrupted writes. Exit status 1 when something is wrong.

    Example: byline doctor --fix
    """
    settings = settings_from(ctx)
    with user_errors():
        diagnosis = common.open_byline(settings).doctor(fix=fix)
    print_diagnosis(diagnosis, as_json)
    raise typer.Exit(0 if diagnosis.ok else 1)


def print_diagnosis(diagnosis: Diagnosis, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(diagnosis.to_dict()))
        return
    for repair in diagnosis.repairs:
        typer.echo(f"fix   {repair}")
    for check in diagnosis.checks:
        typer.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")


def register(app: typer.Typer) -> None:
    """Add `reindex` and `doctor` to the `byline` app."""
    app.command()(reindex)
    app.command()(doctor)
