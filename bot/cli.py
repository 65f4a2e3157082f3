"""The `byline` command line. Settings are built here, at the edge, and passed down."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from bot import cli_bench, cli_chat, cli_eval, cli_slack, cli_web

if TYPE_CHECKING:
    from bot.app import Byline
    from bot.settings import Settings
    from ingest.pipeline import IngestReport

app = typer.Typer(
    name="byline",
    help="Ask questions about news articles; every answer cites the passages it came from.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Data directory (default: $BYLINE_HOME or the user data dir).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML settings file (default: $BYLINE_CONFIG or HOME/byline.toml).")
    ] = None,
) -> None:
    ctx.obj = {"home": home, "config": config}


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    from pydantic import ValidationError

    from bot.settings import load_settings

    options = ctx.find_root().obj or {}
    try:
        return load_settings(options.get("config"), home=options.get("home"), **overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings: {problems}", 2)
    except FileNotFoundError as exc:
        fail(str(exc), 2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line on stderr instead of a traceback."""
    from bot.app import EmptyIndexError
    from bot.llm import ConfigError
    from ingest.embedding import EmbeddingError
    from ingest.store import StoreError

    try:
        yield
    except (UserError, EmptyIndexError, EmbeddingError, StoreError) as exc:
        fail(str(exc))
    except ConfigError as exc:
        fail(str(exc), 2)
    except KeyboardInterrupt:
        fail("interrupted", 130)


def open_byline(settings: Settings) -> Byline:
    from bot.app import Byline

    return Byline(settings)


@app.command()
def ingest(
    ctx: typer.Context,
    sources: Annotated[list[str] | None, typer.Argument(help="Files, folders (recursive) or URLs.")] = None,
    feed: Annotated[list[str] | None, typer.Option(help="RSS/Atom feed URL, ingested once (repeatable).")] = None,
    sitemap: Annotated[list[str] | None, typer.Option(help="Sitemap URL whose pages to ingest (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="Sitemaps: skip pages last modified before this date.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Add articles to the index: .txt .md .html .json .jsonl files and folders of them, web pages, feeds."""
    settings = settings_from(ctx, **cli_web.web_overrides(parse_day(since, "--since")))
    sources = [*(sources or []), *cli_web.web_sources(feed, sitemap)]
    if not sources:
        fail("nothing to ingest: give files, folders or URLs, or --feed / --sitemap URL", 2)
    with user_errors():
        byline = open_byline(settings)
        report = run_ingest(byline, sources)
    print_report(report, as_json)
    raise typer.Exit(1 if report.failed else 0)


def run_ingest(byline: Byline, sources: list[str]) -> IngestReport:
    """Ingest with a live counter on a terminal, silent when piped."""
    if not sys.stderr.isatty():
        return byline.ingest(sources)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.completed} inputs · {task.description}"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        return byline.ingest(sources, progress=lambda n, label: bar.update(task, advance=n, description=label[:60]))


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


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} takes a date like 2019-04-16, not {value!r}", 2)


@app.command()
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    k: Annotated[int | None, typer.Option("-k", min=1, help="Passages to retrieve.")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="Only this outlet (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="Only articles published on or after this date.")] = None,
    until: Annotated[str | None, typer.Option(help="Only articles published on or before this date.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    stream: Annotated[
        bool | None, typer.Option("--stream/--no-stream", help="Stream words as they come (default: on a terminal).")
    ] = None,
) -> None:
    """Answer a question from the ingested articles, with numbered citations."""
    from bot.cli_chat import print_answer, token_printer
    from bot.models import SearchFilters

    if not question.strip():
        fail("the question is empty", 2)
    filters = SearchFilters(tuple(source or ()), parse_day(since, "--since"), parse_day(until, "--until"))
    settings = settings_from(ctx)
    printer = None if as_json else token_printer(stream)
    with user_errors():
        byline = open_byline(settings)
        answer = byline.ask(question, filters=filters, k=k, on_token=printer)
    print_answer(answer, printer, as_json)


@app.command()
def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What the index holds."""
    settings = settings_from(ctx)
    with user_errors():
        figures = open_byline(settings).stats()
    if as_json:
        typer.echo(json.dumps(figures, default=_json_default))
        return
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} ({v})" for k, v in value.items()) or "-"
        typer.echo(f"{key.replace('_', ' ')}: {value}")


@app.command()
def forget(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Article ids, URLs or file paths.")],
) -> None:
    """Remove articles from the index."""
    settings = settings_from(ctx)
    with user_errors():
        removed, missing = open_byline(settings).forget(refs)
    for ref in missing:
        typer.echo(f"not found: {ref}", err=True)
    typer.echo(f"removed {len(removed)} article(s)")
    raise typer.Exit(1 if missing else 0)


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date | Path):
        return str(value)
    raise TypeError(type(value).__name__)


cli_eval.register(app)
cli_web.register(app)
cli_slack.register(app)
cli_chat.register(app)
cli_bench.register(app)


def main() -> None:
    app()
