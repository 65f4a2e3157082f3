"""Scoring an own-format question set: one question's outcome, and the metrics over many, overall and per kind.

Retrieval is scored on the ranked passages (a rank "hits" when its passage is from a gold article, or holds a
gold quote); answers, citations and refusals on what `Byline.ask` returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evals import metrics as m
from evals.datasets import ANSWER_KINDS, EvalQuestion, Evidence
from evals.judge import Verdict

if TYPE_CHECKING:
    from bot.models import Answer, Passage

RANK_DEPTH = 10  # passages scored for hits/MRR and written to --predictions
HIT_CUTOFFS = (1, 5, 10)
# Metrics where a lower value is the better one; the baseline gate reads them the other way round.
LOWER_IS_BETTER = frozenset({"false_refusal_rate"})


@dataclass
class QuestionScore:
    """One question's outcome. Retrieval flags mark, per rank, a passage of a gold article / with a gold quote."""

    answerable: bool
    refused: bool
    article_flags: list[bool]
    evidence_flags: list[bool]
    correct: bool | None
    f1: float | None
    citation_precision: float | None
    citation_recall: float | None
    timings_ms: dict[str, float]
    verdict: Verdict | None = None
    judge_error: str | None = None


_CITATION_MARK = re.compile(r"\s*\[\d+\]")


def answer_text(text: str) -> str:
    """The answer without its [n] citation markers, which would otherwise read as numbers."""
    return _CITATION_MARK.sub("", text)


def score_question(
    question: EvalQuestion, answer: Answer, ranked: Sequence[Passage], gold: dict[Evidence, frozenset[str]]
) -> QuestionScore:
    """Score one question; `gold` maps each evidence item to the ids of the article(s) it names."""
    gold_articles = frozenset().union(*gold.values()) if gold else frozenset()
    gold_spans = [m.QuotedSpan(ids, ev.quote) for ev, ids in gold.items()]
    article_flags = [p.article_id in gold_articles for p in ranked]
    evidence_flags = [
        any(p.article_id in ids and m.contains_quote(p.text, ev.quote) for ev, ids in gold.items()) for p in ranked
    ]
    correct = f1 = precision = recall = None
    if question.answerable:
        text = "" if answer.refused else answer_text(answer.text)
        correct = m.answer_contains(text, question.answers)
        f1 = m.token_f1(text, question.answers)
        cited = [m.QuotedSpan(frozenset({c.article_id}), c.quote) for c in answer.citations]
        precision = m.citation_precision(cited, gold_spans)
        recall = m.citation_recall(cited, gold_spans)
    return QuestionScore(
        answerable=question.answerable,
        refused=answer.refused,
        article_flags=article_flags,
        evidence_flags=evidence_flags,
        correct=correct,
        f1=f1,
        citation_precision=precision,
        citation_recall=recall,
        timings_ms=dict(answer.timings_ms),
    )


def summarise_questions(scores: Sequence[QuestionScore]) -> dict[str, float | None]:
    """Metrics over the questions scored: retrieval and answers on the answerable ones, refusals on all."""
    answerable = [s for s in scores if s.answerable]
    out: dict[str, float | None] = {}
    levels = {"": [s.article_flags for s in answerable], "evidence_": [s.evidence_flags for s in answerable]}
    for prefix, flag_lists in levels.items():
        for k in HIT_CUTOFFS:
            out[f"{prefix}hits@{k}"] = m.mean(m.hit_at_k(flags, k) for flags in flag_lists)
        out[f"{prefix}mrr@{RANK_DEPTH}"] = m.mean(m.reciprocal_rank(flags, RANK_DEPTH) for flags in flag_lists)
    out["answer_accuracy"] = m.mean(float(s.correct) for s in answerable if s.correct is not None)
    out["answer_f1"] = m.mean(s.f1 for s in answerable)
    out["citation_precision"] = m.mean(s.citation_precision for s in answerable)
    out["citation_recall"] = m.mean(s.citation_recall for s in answerable)
    out["refusal_precision"], out["refusal_recall"] = m.refusal_precision_recall(
        (s.answerable, s.refused) for s in scores
    )
    out["false_refusal_rate"] = m.mean(float(s.refused) for s in answerable)
    out.update(latency_metrics([s.timings_ms for s in scores]))
    return out


def latency_metrics(timings: Iterable[dict[str, float]]) -> dict[str, float | None]:
    """p50 and p95 per stage, named latency_<stage>_p50_ms."""
    by_stage: dict[str, list[float]] = {}
    for timing in timings:
        for stage, ms in timing.items():
            by_stage.setdefault(stage, []).append(ms)
    return {f"latency_{stage}_p{p}_ms": m.percentile(values, p) for stage, values in by_stage.items() for p in (50, 95)}


@dataclass(frozen=True, slots=True)
class KindResult:
    """The metrics over the questions of one kind, and how many there were."""

    questions: int
    answerable: int
    metrics: dict[str, float | None]


def summarise_by_kind(questions: Sequence[EvalQuestion], scores: Sequence[QuestionScore]) -> dict[str, KindResult]:
    """Every metric over the scored questions of each kind (`kind` in the set), kinds in ANSWER_KINDS order."""
    grouped: dict[str, list[QuestionScore]] = {}
    for question, score in zip(questions, scores, strict=False):  # an interrupted run scored only the first
        if question.kind is not None:
            grouped.setdefault(question.kind, []).append(score)
    order = {kind: i for i, kind in enumerate(ANSWER_KINDS)}
    return {
        kind: KindResult(len(group), sum(s.answerable for s in group), summarise_questions(group))
        for kind, group in sorted(grouped.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    }
