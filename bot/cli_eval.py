"""`byline eval`: run a question set or a BEIR directory through Byline and report the metrics.

When the answerer is the LLM (or `--judge` asks), the configured model also judges every answer's correctness
and faithfulness; those figures are reported in their own "judged by" block. BEIR runs are retrieval-only.
Exit status: 0 done, 1 a metric fell below the baseline by more than the tolerance, 2 bad input, 130 Ctrl-C.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bot.app import Byline
    from bot.settings import Settings
    from evals.judge import Judge
    from evals.report import Baseline, Comparison
    from evals.runner import EvalResult, ProgressFn

EXIT_REGRESSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def eval_command(
    ctx: typer.Context,
    dataset: Annotated[
        Path | None, typer.Argument(help="Question set in Byline's JSONL format (see evals/data/README.md).")
    ] = None,
    articles: Annotated[
        list[Path] | None,
        typer.Option("--articles", help="File or folder to ingest into a throwaway store (repeatable)."),
    ] = None,
    use_store: Annotated[
        bool, typer.Option("--store", help="Ask the configured store instead of a throwaway one.")
    ] = False,
    beir: Annotated[
        Path | None, typer.Option("--beir", help="BEIR directory: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")
    ] = None,
    split: Annotated[str, typer.Option(help="BEIR qrels split.")] = "test",
    k: Annotated[int | None, typer.Option("-k", min=1, help="Passages handed to the answerer.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions or queries.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help='Write {"metrics": {...}, "config": {...}} here.')
    ] = None,
    predictions: Annotated[Path | None, typer.Option(help="Write one JSON line per question here.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write report.md and metrics.png into this folder.")] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="A saved --json result; exit 1 when a metric drops below it.")
    ] = None,
    tolerance: Annotated[float, typer.Option(min=0, help="Largest drop allowed against --baseline.")] = 0.02,
    judge: Annotated[
        bool | None,
        typer.Option(
            "--judge/--no-judge",
            help="Have the configured model judge each answer's correctness and faithfulness "
            "(default: when the answerer is the LLM).",
        ),
    ] = None,
) -> None:
    """Measure retrieval, answers, citations and refusals on a question set, or retrieval on a BEIR set."""
    from bot.cli import fail, open_byline, settings_from, user_errors
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
    if questions and limit:
        questions = questions[:limit]
    for path in articles or []:
        if not path.exists():
            fail(f"--articles {path}: no such file or directory", EXIT_USAGE)

    settings = settings_from(ctx)
    started_at, started = datetime.now(UTC), time.perf_counter()
    with user_errors(), _store_settings(settings, throwaway=not use_store) as run_settings:
        # Before any ingest, so that a model that cannot be set up stops the run at once.
        judging = _judge(run_settings, judge) if beir is None else None
        byline = open_byline(run_settings)
        try:
            if beir is not None:
                result = _run_beir(byline, beir, split, limit)
            else:
                assert dataset is not None
                result = _run_questions(byline, dataset, questions, articles or [], k, judging)
        except DatasetError as exc:
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


@contextmanager
def _store_settings(settings: Settings, *, throwaway: bool) -> Iterator[Settings]:
    """The configured settings, or the same settings over an empty temporary data dir."""
    if not throwaway:
        yield settings
        return
    from evals.runner import throwaway_settings

    # Chroma may still hold files open at cleanup; leftovers in the temp dir are harmless.
    with tempfile.TemporaryDirectory(prefix="byline-eval-", ignore_cleanup_errors=True) as home:
        yield throwaway_settings(settings, Path(home))


def _judge(settings: Settings, asked: bool | None) -> tuple[str, Judge] | None:
    """The judging model's name and the judge, when the answerer is the LLM or --judge asks; else None."""
    if not (asked if asked is not None else settings.answerer == "llm"):
        return None
    from bot.llm import check_llm_settings
    from evals.judge import build_judge, judge_model

    if asked:  # with an extractive answerer nothing else needs the model: say it is --judge that does
        check_llm_settings(settings.llm, wanted_by="--judge")
    return judge_model(settings.llm), build_judge(settings)


def _run_questions(
    byline: Byline,
    dataset: Path,
    questions: list[Any],
    articles: list[Path],
    k: int | None,
    judging: tuple[str, Judge] | None,
) -> EvalResult:
    from bot.cli import fail
    from evals.runner import ingest_summary, resolve_gold, run_questions, settings_config

    config: dict[str, Any] = {"sources": [str(p) for p in articles], "k": k or byline.settings.retrieval.k}
    if articles:
        # Absolute paths, so evidence given by a path relative to the repository still finds its article.
        with _progress("ingesting") as progress:
            ingested = byline.ingest([str(p.resolve()) for p in articles], progress=_counter(progress))
        for failure in ingested.failed:
            typer.echo(f"warning: not ingested: {failure.source}: {failure.reason}", err=True)
        if not ingested.articles:
            fail(f"no articles could be ingested from {', '.join(map(str, articles))}", EXIT_USAGE)
        config.update(ingest_summary(ingested))
    bases = [Path.cwd(), *dataset.resolve().parents]
    gold, unresolved = resolve_gold(byline, questions, bases)
    if unresolved and len(unresolved) == len({ev.ref for q in questions for ev in q.evidence}):
        fail(f"no evidence article of {dataset} is in the store (first: {unresolved[0]})", EXIT_USAGE)
    if unresolved:
        shown = ", ".join(unresolved[:3]) + (" ..." if len(unresolved) > 3 else "")
        typer.echo(f"warning: {len(unresolved)} evidence article(s) not in the store: {shown}", err=True)
    judge_model, judge = judging or ("", None)
    with _progress("asking and judging" if judge else "asking") as progress:
        result = run_questions(byline, questions, gold, k=k, judge=judge, judge_model=judge_model, progress=progress)
    result.config.update(config | settings_config(byline.settings) | {"unresolved_evidence": unresolved})
    return result


def _run_beir(byline: Byline, directory: Path, split: str, limit: int | None) -> EvalResult:
    from evals.datasets import iter_beir_corpus
    from evals.runner import beir_articles, ingest_summary, load_beir, run_beir_queries, settings_config

    qrels, queries = load_beir(directory, split, limit)
    with (directory / "corpus.jsonl").open("rb") as corpus:
        documents = sum(1 for line in corpus if line.strip())
    with _progress("indexing") as progress:
        progress(0, documents, "")
        ingested = byline.ingest_results(
            beir_articles(directory, iter_beir_corpus(directory)), progress=_counter(progress, documents)
        )
    for failure in ingested.failed[:5]:
        typer.echo(f"warning: not indexed: {failure.source}: {failure.reason}", err=True)
    with _progress("searching") as progress:
        result = run_beir_queries(byline, qrels, queries, progress=progress)
    result.config.update(
        {"split": split, "documents": documents} | ingest_summary(ingested) | settings_config(byline.settings)
    )
    return result


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


def _counter(progress: ProgressFn, total: int | None = None) -> Callable[[int, str], None]:
    """Adapt the ingest pipeline's (n more, label) callback to (done, total, label)."""
    done = 0

    def advance(n: int, label: str) -> None:
        nonlocal done
        done += n
        progress(done, total, label)

    return advance


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

    from evals.report import judge_table_rows, metrics_table_rows

    config = result.config
    console = Console(soft_wrap=True)
    title = f"{config.get('set')}: {config.get('scored')} of {config.get('total')} scored"
    console.print(_table(title, "metric", metrics_table_rows(result, comparisons), comparisons is not None))
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
