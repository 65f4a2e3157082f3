"""The eval suite's commands, joined to `byline` through the `byline.commands` entry-point group.

`byline eval` runs a question set or a BEIR directory through Byline and reports the metrics. When the answerer
is the LLM (or `--judge` asks), the configured model also judges every answer's correctness and faithfulness;
those figures are reported in their own "judged by" block. BEIR runs are retrieval-only. Exit status: 0 done,
1 a metric fell below the baseline by more than the tolerance, 2 bad input, 130 Ctrl-C.

`byline bench` measures ingest and query speed against the LangChain tutorial pipeline.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli import common
from bot.cli.common import fail, settings_from, user_errors
from bot.cli.progress import ingest_display

if TYPE_CHECKING:
    from evals.datasets import EvalQuestion
    from evals.report import Baseline, Comparison
    from evals.runner import EvalResult, ProgressFn

EXIT_REGRESSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def register(app: typer.Typer) -> None:
    """The `byline.commands` hook: adds `eval` and `bench` to the `byline` app."""
    app.command("eval")(eval_command)
    app.command("bench")(bench)


def eval_command(
    ctx: typer.Context,
    dataset: Annotated[
        Path | None,
        typer.Argument(metavar="QUESTIONS", help="Question set in Byline's JSONL format (see evals/data/README.md)."),
    ] = None,
    articles: Annotated[
        list[Path] | None,
        typer.Option(
            "--articles", metavar="PATH", help="File or folder to ingest into a throwaway store (repeatable)."
        ),
    ] = None,
    use_store: Annotated[
        bool, typer.Option("--store", help="Ask the configured store instead of a throwaway one.")
    ] = False,
    beir: Annotated[
        Path | None,
        typer.Option("--beir", metavar="DIR", help="BEIR directory: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv."),
    ] = None,
    split: Annotated[str, typer.Option(metavar="SPLIT", help="BEIR qrels split.")] = "test",
    k: Annotated[int | None, typer.Option("-k", metavar="N", min=1, help="Passages handed to the answerer.")] = None,
    limit: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Only the first N questions or queries.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", metavar="FILE", help='Write {"metrics": {...}, "config": {...}} here.')
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write one JSON line per question here.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Write report.md and metrics.png into this folder.")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(metavar="FILE", help="A saved --json result; exit 1 when a metric drops below it.")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(metavar="DROP", min=0, help="Largest drop allowed against --baseline.")
    ] = 0.02,
    judge: Annotated[
        bool | None,
        typer.Option(
            "--judge/--no-judge",
            help="Have the configured model judge each answer's correctness and faithfulness "
            "(default: when the answerer is the LLM).",
        ),
    ] = None,
) -> None:
    """Measure retrieval, answers, citations and refusals on a question set, or retrieval on a BEIR set.

    Example: byline eval evals/data/seeds.jsonl --articles seeds/ --report reports/seeds
    """
    from evals.datasets import DatasetError
    from evals.session import EvalUsageError, make_judge, run_beir_set, run_question_set, store_settings

    saved, questions = _checked_inputs(dataset, beir, split, articles or [], use_store, judge, baseline, limit)
    settings = settings_from(ctx)
    started_at, started = datetime.now(UTC), time.perf_counter()
    with user_errors(), store_settings(settings, throwaway=not use_store) as run_settings:
        # Before any ingest, so that a model that cannot be set up stops the run at once.
        judging = make_judge(run_settings, judge) if beir is None else None
        byline = common.open_byline(run_settings)
        try:
            if beir is not None:
                result = run_beir_set(
                    byline, beir, split, limit, progress=_progress, ingest_display=ingest_display, say=_say
                )
            else:
                assert dataset is not None
                result = run_question_set(
                    byline,
                    dataset,
                    questions,
                    articles or [],
                    k,
                    judging,
                    progress=_progress,
                    ingest_display=ingest_display,
                    say=_say,
                )
        except (DatasetError, EvalUsageError) as exc:
            fail(str(exc), EXIT_USAGE)
    result.config.update(
        {
            "set": str(beir or dataset),
            "store": "throwaway" if not use_store else str(settings.home),
            "started_at": started_at.isoformat(timespec="seconds"),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "limit": limit,
            "total": result.config.get("questions") or result.config.get("queries"),
            "interrupted": result.interrupted,
        }
    )
    _finish(result, saved, tolerance, json_out, predictions, report)


def _checked_inputs(
    dataset: Path | None,
    beir: Path | None,
    split: str,
    articles: list[Path],
    use_store: bool,
    judge: bool | None,
    baseline: Path | None,
    limit: int | None,
) -> tuple[Baseline | None, list[EvalQuestion]]:
    """The saved baseline and the questions to ask, once the options are known to make sense (else exit 2)."""
    from evals.datasets import DatasetError, check_beir_dir, load_questions
    from evals.report import load_baseline

    if (dataset is None) == (beir is None):
        fail("give a question set (SET.jsonl) or --beir DIR, not both", EXIT_USAGE)
    if beir is not None and (articles or use_store):
        fail("--beir builds its own index from the corpus: drop --articles/--store", EXIT_USAGE)
    if beir is not None and judge:
        fail("--beir runs are retrieval-only, with no answers to judge: drop --judge", EXIT_USAGE)
    if dataset is not None and bool(articles) == use_store:
        fail("say which articles to ask: --articles FILE|DIR (throwaway store) or --store", EXIT_USAGE)
    try:
        saved = load_baseline(baseline) if baseline else None
        questions = load_questions(dataset) if dataset else []
        if beir is not None:
            check_beir_dir(beir, split)
    except (DatasetError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    for path in articles:
        if not path.exists():
            fail(f"--articles {path}: no such file or directory", EXIT_USAGE)
    return saved, questions[:limit] if limit else questions


def _say(line: str) -> None:
    typer.echo(line, err=True)


# -- progress ------------------------------------------------------------------------------------------


@contextmanager
def _progress(stage: str) -> Iterator[ProgressFn]:
    """A progress bar on stderr when it is a terminal; nothing when piped."""
    if not sys.stderr.isatty():
        yield lambda done, total, label: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"{stage} [dim]{{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)
        yield lambda done, total, label: bar.update(task, completed=done, total=total, description=label[:40])


# -- output --------------------------------------------------------------------------------------------


def _finish(
    result: EvalResult,
    baseline: Baseline | None,
    tolerance: float,
    json_out: Path | None,
    predictions: Path | None,
    report: Path | None,
) -> None:
    from evals.report import gate, judge_not_compared, write_json, write_predictions, write_report

    comparisons = gate(result, baseline, tolerance) if baseline else None
    _print_table(result, comparisons)
    if baseline and (note := judge_not_compared(result, baseline)):
        typer.echo(f"note: {note}", err=True)
    if result.judge and result.judge.failures:
        failed = [p for p in result.predictions if "error" in p.get("judge", {})]
        typer.echo(
            f"warning: the judge gave no verdict on {result.judge.failures} question(s), left out of its rates "
            f"(first: {failed[0]['id']}: {failed[0]['judge']['error']})",
            err=True,
        )
    if result.interrupted:
        typer.echo(
            f"interrupted: {result.config['scored']} of {result.config['total']} scored; no files written",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    if json_out:
        write_json(json_out, result)
    if predictions:
        write_predictions(predictions, result)
    if report:
        typer.echo(f"report: {write_report(report, result, baseline, comparisons)}", err=True)
    regressed = [c for c in comparisons or [] if c.regressed]
    if regressed:
        names = ", ".join(c.name for c in regressed)
        typer.echo(f"regressed by more than {tolerance} against the baseline: {names}", err=True)
        raise typer.Exit(EXIT_REGRESSED)


def _print_table(result: EvalResult, comparisons: list[Comparison] | None) -> None:
    from rich.console import Console

    from evals.report import judge_table_rows, kind_table, metrics_table_rows

    config = result.config
    console = Console(soft_wrap=True)
    title = f"{config.get('set')}: {config.get('scored')} of {config.get('total')} scored"
    console.print(_table(title, "metric", metrics_table_rows(result, comparisons), comparisons is not None))
    if result.by_kind:
        for table in _kind_tables(*kind_table(result), console.width):
            console.print(table)
    if result.judge is not None:
        judged = result.judge
        title = f"judged by {judged.model}: rates over {judged.verdicts} verdict(s), {judged.failures} failure(s)"
        console.print(_table(title, "figure", judge_table_rows(judged, comparisons), comparisons is not None))
    summary = [f"{config['articles']} articles" if isinstance(config.get("articles"), int) else None]
    if "ingest_seconds" in config:
        summary.append(f"ingest {config['ingest_seconds']} s")
    if "judge_seconds" in config:
        summary.append(f"judging {config['judge_seconds']} s")
    summary.append(f"wall {config.get('wall_seconds')} s")
    typer.echo(" · ".join(s for s in summary if s))


def _table(title: str, first: str, rows: list[tuple[str, str, str]], compared: bool) -> Any:
    """A rich table of (name, value, change vs baseline) rows; the change column only against a baseline."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column(first)
    table.add_column("value", justify="right")
    if compared:
        table.add_column("vs baseline", justify="right")
    for name, value, change in rows:
        style = "red" if "REGRESSED" in change or change == "missing" else None
        table.add_row(name, value, *([change] if compared else []), style=style)
    return table


def _kind_tables(headers: list[str], rows: list[list[str]], width: int) -> list[Any]:
    """The per-kind figures, a column per kind: as many tables as it takes for each to fit `width` columns."""
    from rich.table import Table

    first = max(len(row[0]) for row in rows) + 4
    groups: list[list[int]] = [[]]
    used = first
    for column, header in enumerate(headers[1:], start=1):
        kind, count = header.rsplit(" ", 1)
        need = max(len(kind), len(count), *(len(row[column]) for row in rows)) + 3
        if groups[-1] and used + need > width:
            groups.append([])
            used = first
        groups[-1].append(column)
        used += need
    tables = []
    for group in groups:
        table = Table(title="per kind (questions)")
        table.add_column(headers[0])
        for column in group:
            table.add_column(headers[column].replace(" (", "\n("), justify="right")
        for row in rows:
            table.add_row(row[0], *(row[column] for column in group))
        tables.append(table)
    return tables


# -- bench ---------------------------------------------------------------------------------------------


def bench(
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Folder for results.json, summary.md and bench.png.")
    ] = Path("bench-out"),
    data: Annotated[
        Path,
        typer.Option(
            metavar="DIR", help="Folder holding beir-scifact/ and wikinews/wikinews-2019.jsonl (the shared dev data)."
        ),
    ] = Path("../shared/data"),
    scifact: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="BEIR SciFact corpus.jsonl, its queries.jsonl beside it (default: in --data)."
        ),
    ] = None,
    wikinews: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Wikinews sample JSONL (default: in --data).")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small subsets: a smoke run in about a minute.")] = False,
    scale: Annotated[
        list[int] | None, typer.Option("--scale", metavar="N", help="Chunk counts for the scale curves (repeatable).")
    ] = None,
    queries: Annotated[int | None, typer.Option(metavar="N", min=1, help="Questions per latency measurement.")] = None,
    scifact_limit: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Only the first N SciFact abstracts.")
    ] = None,
    pairs: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Ingests of each corpus per pipeline, alternating (default 3; quick 1)."),
    ] = None,
    no_tutorial: Annotated[bool, typer.Option("--no-tutorial", help="Skip the LangChain baseline.")] = False,
    catalog: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL server (postgresql://user:pw@host/db) for the catalogs: each index gets a database "
            "of its own there (default: SQLite under each index's home)."
        ),
    ] = None,
) -> None:
    """Benchmark ingest and queries against the LangChain tutorial pipeline (same data, same machine, alternating).

    Example: byline bench --quick --data ../shared/data --out reports/bench
    """
    from evals.bench import BenchError, Options, run_bench

    scifact = scifact or data / "beir-scifact" / "corpus.jsonl"
    wikinews = wikinews or data / "wikinews" / "wikinews-2019.jsonl"
    for path in (scifact, scifact.parent / "queries.jsonl", wikinews):
        if not path.is_file():
            fail(f"{path}: no such file (give --data DIR, or --scifact and --wikinews)", EXIT_USAGE)
    options = Options.quick_run(out, scifact, wikinews) if quick else Options(out, scifact, wikinews)
    if scale:
        options.scale = tuple(scale)
    if queries:
        options.queries = queries
    if scifact_limit:
        options.scifact_limit = scifact_limit
    if pairs:
        options.pairs = pairs
    options.skip_tutorial = no_tutorial
    if catalog and not catalog.startswith(("postgresql://", "postgres://")):
        fail("--catalog takes a postgresql:// URL", EXIT_USAGE)
    options.catalog = catalog
    out.mkdir(parents=True, exist_ok=True)
    try:
        run_bench(options, say=lambda line: typer.echo(line, err=True))
    except BenchError as exc:
        fail(str(exc))
    typer.echo((out / "summary.md").read_text())
