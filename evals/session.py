"""One eval run: the store it asks (the configured one, or a throwaway one), the judge, and running a question
set or a BEIR directory through it. The command line (`evals.cli`) only parses options and prints."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals.datasets import EvalQuestion, iter_beir_corpus
from evals.runner import (
    EvalResult,
    ProgressFn,
    beir_articles,
    ingest_summary,
    load_beir,
    resolve_gold,
    run_beir_queries,
    run_questions,
    settings_config,
    throwaway_settings,
)

if TYPE_CHECKING:
    from bot.app import Byline
    from bot.settings import Settings
    from evals.judge import Judge
    from ingest.progress import ProgressDisplay

Say = Callable[[str], None]
# A progress display for one stage, named by the stage ("asking", "searching", ...).
ProgressFactory = Callable[[str], AbstractContextManager[ProgressFn]]


class EvalUsageError(ValueError):
    """The run cannot go ahead as asked (no articles could be ingested, no evidence article is in the store)."""


@contextmanager
def store_settings(settings: Settings, *, throwaway: bool) -> Iterator[Settings]:
    """The configured settings, or the same settings over an empty temporary data dir."""
    if not throwaway:
        yield settings
        return
    # Chroma may still hold files open at cleanup; leftovers in the temp dir are harmless.
    with tempfile.TemporaryDirectory(prefix="byline-eval-", ignore_cleanup_errors=True) as home:
        yield throwaway_settings(settings, Path(home))


def make_judge(settings: Settings, asked: bool | None) -> tuple[str, Judge] | None:
    """The judging model's name and the judge, when the answerer is the LLM or --judge asks; else None."""
    if not (asked if asked is not None else settings.answerer == "llm"):
        return None
    from bot.answering.llm import check_llm_settings
    from evals.judge import build_judge, judge_model

    if asked:  # with an extractive answerer nothing else needs the model: say it is --judge that does
        check_llm_settings(settings.llm, wanted_by="--judge")
    return judge_model(settings.llm), build_judge(settings)


def run_question_set(
    byline: Byline,
    dataset: Path,
    questions: list[EvalQuestion],
    articles: list[Path],
    k: int | None,
    judging: tuple[str, Judge] | None,
    *,
    progress: ProgressFactory,
    ingest_display: ProgressDisplay,
    say: Say,
) -> EvalResult:
    """Ingest `articles` (if any), resolve the gold evidence, then ask every question (and judge it)."""
    config: dict[str, Any] = {"sources": [str(p) for p in articles], "k": k or byline.settings.retrieval.k}
    if articles:
        # Absolute paths, so evidence given by a path relative to the repository still finds its article.
        with ingest_display() as shown:
            ingested = byline.ingest([str(p.resolve()) for p in articles], progress=shown)
        for failure in ingested.failed:
            say(f"warning: not ingested: {failure.source}: {failure.reason}")
        if not ingested.articles:
            raise EvalUsageError(f"no articles could be ingested from {', '.join(map(str, articles))}")
        config.update(ingest_summary(ingested))
    bases = [Path.cwd(), *dataset.resolve().parents]
    gold, unresolved = resolve_gold(byline, questions, bases)
    if unresolved and len(unresolved) == len({ev.ref for q in questions for ev in q.evidence}):
        raise EvalUsageError(f"no evidence article of {dataset} is in the store (first: {unresolved[0]})")
    if unresolved:
        shown_refs = ", ".join(unresolved[:3]) + (" ..." if len(unresolved) > 3 else "")
        say(f"warning: {len(unresolved)} evidence article(s) not in the store: {shown_refs}")
    judge_model, judge = judging or ("", None)
    with progress("asking and judging" if judge else "asking") as shown:
        result = run_questions(byline, questions, gold, k=k, judge=judge, judge_model=judge_model, progress=shown)
    result.config.update(config | settings_config(byline.settings) | {"unresolved_evidence": unresolved})
    return result


def run_beir_set(
    byline: Byline,
    directory: Path,
    split: str,
    limit: int | None,
    *,
    progress: ProgressFactory,
    ingest_display: ProgressDisplay,
    say: Say,
) -> EvalResult:
    """Index the BEIR corpus in `byline`'s store, then rank documents for every query."""
    qrels, queries = load_beir(directory, split, limit)
    with (directory / "corpus.jsonl").open("rb") as corpus:
        documents = sum(1 for line in corpus if line.strip())
    with ingest_display() as shown:
        corpus_articles = beir_articles(directory, iter_beir_corpus(directory))
        ingested = byline.ingest_results(corpus_articles, progress=shown, total=documents)
    for failure in ingested.failed[:5]:
        say(f"warning: not indexed: {failure.source}: {failure.reason}")
    with progress("searching") as shown:
        result = run_beir_queries(byline, qrels, queries, progress=shown)
    result.config.update(
        {"split": split, "documents": documents} | ingest_summary(ingested) | settings_config(byline.settings)
    )
    return result
