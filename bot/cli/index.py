"""`byline ingest`, `stats` and `forget`: what goes into the index, what it holds, and taking articles out."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli import common
from bot.cli.common import fail, json_default, parse_day, settings_from, user_errors
from bot.cli.progress import ingest_display
from bot.cli.web import web_overrides, web_sources

if TYPE_CHECKING:
    from bot.app import Byline
    from ingest.pipeline import IngestReport


def ingest(
    ctx: typer.Context,
    sources: Annotated[
        list[str] | None, typer.Argument(metavar="SOURCE", help="Files, folders (recursive) or URLs.")
    ] = None,
    feed: Annotated[
        list[str] | None, typer.Option(metavar="URL", help="RSS/Atom feed URL, ingested once (repeatable).")
    ] = None,
    sitemap: Annotated[
        list[str] | None, typer.Option(metavar="URL", help="Sitemap URL whose pages to ingest (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(metavar="DATE", help="Sitemaps: skip pages last modified before this date.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Add articles to the index: .txt .md .html .json .jsonl .pdf .docx files and folders of them, web pages, feeds.

    Example: byline ingest seeds/ https://en.wikinews.org/wiki/Notre_Dame_in_Paris_catches_fire
    """
    settings = settings_from(ctx, **web_overrides(parse_day(since, "--since")))
    sources = [*(sources or []), *web_sources(feed, sitemap)]
    if not sources:
        fail("nothing to ingest: give files, folders or URLs, or --feed / --sitemap URL", 2)
    with user_errors():
        byline = common.open_byline(settings)
        report = run_ingest(byline, sources)
    print_report(report, as_json)
    raise typer.Exit(1 if report.failed else 0)


def run_ingest(byline: Byline, sources: list[str]) -> IngestReport:
    """Ingest with a live progress display on a terminal, silent when piped."""
    with ingest_display() as progress:
        return byline.ingest(sources, progress=progress)


def print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    for failure in report.failed:
        typer.echo(f"failed: {failure.source}: {failure.reason}", err=True)
    rate = report.articles / report.seconds if report.seconds else 0.0
    typer.echo(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
        f"failed {len(report.failed)} · {report.chunks} chunks · {report.seconds:.1f} s ({rate:.1f} articles/s)"
    )


def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What the index holds.

    Example: byline stats --json
    """
    settings = settings_from(ctx)
    with user_errors():
        figures = common.open_byline(settings).stats()
    if as_json:
        typer.echo(json.dumps(figures, default=json_default))
        return
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} ({v})" for k, v in value.items()) or "-"
        typer.echo(f"{key.replace('_', ' ')}: {value}")


def forget(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(metavar="REF", help="Article ids, URLs or file paths.")],
) -> None:
    """Remove articles from the index; their text leaves every file of the home, recorded Slack answers included.

    Example: byline forget seeds/the-hill-dorsey-omar.txt
    """
    if not all(ref.strip() for ref in refs):
        fail("forget takes article ids, URLs or file paths, not an empty string", 2)
    from bot.slack.feedback import FeedbackStore

    settings = settings_from(ctx)
    with user_errors():
        byline = common.open_byline(settings)
        removed, missing = byline.forget(refs)
        withdrawn = FeedbackStore(byline.catalog).withdraw_citing(removed)
    for ref in missing:
        typer.echo(f"not found: {ref}", err=True)
    typer.echo(f"removed {len(removed)} article(s)")
    if withdrawn:
        typer.echo(f"withdrew {withdrawn} answer(s) the Slack bot had recorded citing them")
    raise typer.Exit(1 if missing else 0)
