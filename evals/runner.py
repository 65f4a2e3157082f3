"""Run an eval set through the facade users call (`Byline.ask`, `Byline.retriever.search`) and score it.

Own-format sets: article- and evidence-level retrieval hits, answers, citations, refusals, latency per stage,
and, when a judge is given, the model's verdicts on correctness and faithfulness (kept apart from the rest).
BEIR directories: document-level nDCG@10, MRR@10, Recall@10/100 over a throwaway index of the corpus.
A KeyboardInterrupt stops the loop cleanly: the result then holds what was measured so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evals import metrics as m
from evals.datasets import (
    BeirDoc,
    DatasetError,
    EvalQuestion,
    Evidence,
    load_beir_qrels,
    load_beir_queries,
)
from evals.judge import Judge, JudgeError
from evals.scoring import (
    RANK_DEPTH,
    KindResult,
    QuestionScore,
    answer_text,
    latency_metrics,
    score_question,
    summarise_by_kind,
    summarise_questions,
)

if TYPE_CHECKING:
    from bot.app import Byline
    from bot.models import Answer, Passage
    from bot.settings import Settings
    from ingest.loaders import LoadResult
    from ingest.pipeline import IngestReport

BEIR_DEPTH = 100  # documents ranked per BEIR query (for recall@100)

# Told (done, total, label) as the run advances; total is None while it is unknown.
ProgressFn = Callable[[int, int | None, str], None]


def _quiet(done: int, total: int | None, label: str) -> None:
    return None


@dataclass
class Miss:
    """A question (or query) the run got wrong, for the report."""

    id: str
    question: str
    expected: str
    got: str
    why: str


@dataclass
class EvalResult:
    kind: Literal["questions", "beir"]
    metrics: dict[str, float | None]
    config: dict[str, Any]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    interrupted: bool = False
    judge: JudgeSummary | None = None
    # The metrics per kind of question, when the set gives kinds.
    by_kind: dict[str, KindResult] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metrics": {k: _round(v) for k, v in self.metrics.items()}}
        if self.by_kind:
            out["by_kind"] = {
                kind: {
                    "questions": group.questions,
                    "answerable": group.answerable,
                    "metrics": {k: _round(v) for k, v in group.metrics.items()},
                }
                for kind, group in self.by_kind.items()
            }
        if self.judge is not None:
            out["judge"] = self.judge.to_json()
        return out | {"config": self.config}


# The judge's rates, as named in the "judge" object of `--json` output.
JUDGED_RATES = ("correctness", "faithfulness")


@dataclass(frozen=True, slots=True)
class JudgeSummary:
    """What the judging model made of the answers: rates over the questions it gave a verdict on."""

    model: str
    correctness: float | None
    faithfulness: float | None
    verdicts: int
    failures: int

    def rates(self) -> dict[str, float | None]:
        return {"correctness": self.correctness, "faithfulness": self.faithfulness}

    def to_json(self) -> dict[str, Any]:
        rates = {name: _round(value) for name, value in self.rates().items()}
        return {"model": self.model, **rates, "verdicts": self.verdicts, "failures": self.failures}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# -- own-format sets -----------------------------------------------------------------------------------


def summarise_judged(scores: Sequence[QuestionScore], model: str) -> JudgeSummary:
    """The judge's figures over the questions scored; a question it gave no verdict on counts as a failure."""
    verdicts = [s.verdict for s in scores if s.verdict is not None]
    return JudgeSummary(
        model=model,
        correctness=m.mean(float(v["correct"]) for v in verdicts),
        faithfulness=m.mean(float(v["faithful"]) for v in verdicts),
        verdicts=len(verdicts),
        failures=sum(s.judge_error is not None for s in scores),
    )


def judge_question(judge: Judge, question: EvalQuestion, answer: Answer, score: QuestionScore) -> None:
    """Record the judge's verdict on `answer` in `score`, or why there is none, and how long the judge took."""
    started = time.perf_counter()
    try:
        # The passages the answerer was given: the only evidence the answer may draw on.
        score.verdict = judge(question.question, question.answers, answer.text, answer.passages)
    except JudgeError as exc:
        score.judge_error = str(exc)
    score.timings_ms["judge"] = (time.perf_counter() - started) * 1000


def evidence_refs(evidence: Evidence, bases: Sequence[Path]) -> list[str]:
    """What to look an evidence item up by: the ref itself, and a relative path tried from each base dir."""
    refs = [evidence.ref]
    if evidence.path and not Path(evidence.path).is_absolute():
        refs += [str((base / evidence.path).resolve()) for base in bases]
    return list(dict.fromkeys(refs))


def resolve_gold(
    byline: Byline, questions: Sequence[EvalQuestion], bases: Sequence[Path]
) -> tuple[dict[str, dict[Evidence, frozenset[str]]], list[str]]:
    """Each question's evidence mapped to ingested article ids, and the refs that matched no article."""
    found: dict[str, frozenset[str]] = {}
    gold: dict[str, dict[Evidence, frozenset[str]]] = {}
    unresolved: list[str] = []
    for question in questions:
        gold[question.id] = {}
        for ev in question.evidence:
            if ev.ref not in found:
                ids: set[str] = set()
                for ref in evidence_refs(ev, bases):
                    ids.update(byline.catalog.resolve(ref))
                found[ev.ref] = frozenset(ids)
                if not ids:
                    unresolved.append(ev.ref)
            gold[question.id][ev] = found[ev.ref]
    return gold, unresolved


def run_questions(
    byline: Byline,
    questions: Sequence[EvalQuestion],
    gold: dict[str, dict[Evidence, frozenset[str]]],
    *,
    k: int | None = None,
    judge: Judge | None = None,
    judge_model: str = "",
    progress: ProgressFn = _quiet,
) -> EvalResult:
    """Ask every question as a user would, score it; stops early, keeping what it has, on Ctrl-C.

    With a `judge` (named `judge_model` in the reports) each answer is also judged; a question the judge
    fails on is counted and the run goes on.
    """
    scores: list[QuestionScore] = []
    predictions: list[dict[str, Any]] = []
    misses: list[Miss] = []
    interrupted = False
    progress(0, len(questions), "")
    try:
        for done, question in enumerate(questions, start=1):
            answer = byline.ask(question.question, k=k)
            # The top passages for the retrieval metrics (`ask` retrieves only the k it answers from). After
            # `ask`, so that its timings, not this search, pay for embedding the question.
            ranked = byline.retriever.search(question.question, k=RANK_DEPTH)
            score = score_question(question, answer, ranked, gold[question.id])
            if judge is not None:
                progress(done - 1, len(questions), f"{question.id} (judging)")
                judge_question(judge, question, answer, score)
            scores.append(score)
            predictions.append(_prediction(question, answer, ranked, score))
            if miss := _question_miss(question, answer, score):
                misses.append(miss)
            progress(done, len(questions), question.id)
    except KeyboardInterrupt:
        interrupted = True
    config: dict[str, Any] = {
        "questions": len(questions),
        "scored": len(scores),
        "answerable": sum(s.answerable for s in scores),
        "unanswerable": sum(not s.answerable for s in scores),
    }
    if judge is not None:
        config["judge_seconds"] = round(sum(s.timings_ms.get("judge", 0.0) for s in scores) / 1000, 2)
    return EvalResult(
        kind="questions",
        metrics=summarise_questions(scores),
        config=config,
        predictions=predictions,
        misses=misses,
        interrupted=interrupted,
        judge=summarise_judged(scores, judge_model) if judge is not None else None,
        by_kind=summarise_by_kind(questions, scores),
    )


def _passage_json(passage: Passage) -> dict[str, Any]:
    return {
        "article_id": passage.article_id,
        "chunk_id": passage.chunk_id,
        "title": passage.title,
        "url": passage.url,
        "path": passage.path,
        "start": passage.start,
        "end": passage.end,
        "text": passage.text,
        "score": round(passage.score, 6),
    }


def _prediction(
    question: EvalQuestion, answer: Answer, ranked: Sequence[Passage], score: QuestionScore
) -> dict[str, Any]:
    # The question's own extra fields (kind, tags, notes, ...) first: a field of the prediction wins a clash.
    record: dict[str, Any] = {
        **question.meta,
        "id": question.id,
        "question": question.question,
        "answer": answer.text,
        "short_answer": answer.short_answer,
        "refused": answer.refused,
        "citations": [c.to_dict() for c in answer.citations],
        "passages": [_passage_json(p) for p in ranked],
        "answerable": question.answerable,
        "gold_answers": list(question.answers),
        "correct": score.correct,
        "evidence_rank": _first_rank(score.evidence_flags),
        "timings_ms": {stage: round(ms, 2) for stage, ms in score.timings_ms.items()},
    }
    if score.verdict is not None:
        record["judge"] = dict(score.verdict)
    elif score.judge_error is not None:
        record["judge"] = {"error": score.judge_error}
    return record


def _first_rank(flags: Sequence[bool]) -> int | None:
    return next((rank for rank, flag in enumerate(flags, start=1) if flag), None)


def _question_miss(question: EvalQuestion, answer: Answer, score: QuestionScore) -> Miss | None:
    got = "(refused)" if answer.refused else answer_text(answer.text)
    if not question.answerable:
        if answer.refused:
            return None
        return Miss(question.id, question.question, "(refusal)", got, "answered an unanswerable question")
    if score.correct:
        return None
    if not any(score.evidence_flags):
        why = "evidence not in the top 10" + (" (right article retrieved)" if any(score.article_flags) else "")
    else:
        why = f"evidence at rank {_first_rank(score.evidence_flags)}, " + (
            "but refused" if answer.refused else "gold answer not in the answer"
        )
    return Miss(question.id, question.question, " | ".join(question.answers), got, why)


# -- BEIR ----------------------------------------------------------------------------------------------


def beir_articles(directory: Path, docs: Iterable[BeirDoc]) -> Iterator[LoadResult]:
    """Each BEIR document as an Article whose id is the document's _id (so rankings map back directly)."""
    from ingest.loaders import LoadFailure, make_article

    for doc in docs:
        try:
            yield make_article(title=doc.title or None, text=doc.text, article_id=doc.id)
        except ValueError as exc:
            yield LoadFailure(f"{directory / 'corpus.jsonl'} _id {doc.id}", str(exc))


def summarise_beir(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float | None]:
    """Document-level BEIR metrics over the queries ranked so far."""
    judged = [q for q in rankings if q in qrels]
    return {
        "ndcg@10": m.mean(m.ndcg_at_k(rankings[q], qrels[q], 10) for q in judged),
        "mrr@10": m.mean(m.mrr_at_k(rankings[q], qrels[q], 10) for q in judged),
        "recall@10": m.mean(m.recall_at_k(rankings[q], qrels[q], 10) for q in judged),
        "recall@100": m.mean(m.recall_at_k(rankings[q], qrels[q], 100) for q in judged),
    }


def load_beir(directory: Path, split: str, limit: int | None) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """The judged queries of a split (the first `limit` of them when given) and their texts."""
    qrels = load_beir_qrels(directory, split)
    if limit is not None:
        qrels = dict(list(qrels.items())[:limit])
    queries = load_beir_queries(directory, set(qrels))
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise DatasetError([f"{directory / 'queries.jsonl'}: no text for judged query id(s) {', '.join(missing[:10])}"])
    return qrels, queries


def run_beir_queries(
    byline: Byline,
    qrels: dict[str, dict[str, int]],
    queries: dict[str, str],
    *,
    progress: ProgressFn = _quiet,
) -> EvalResult:
    """Rank documents for each judged query by its best passage; retrieval only, no answering."""
    # Passages, not documents, come back: ask for enough that BEIR_DEPTH distinct documents survive.
    passages_wanted = BEIR_DEPTH * byline.settings.retrieval.per_article
    rankings: dict[str, list[str]] = {}
    timings: list[dict[str, float]] = []
    predictions: list[dict[str, Any]] = []
    interrupted = False
    progress(0, len(qrels), "")
    try:
        for done, query_id in enumerate(qrels, start=1):
            started = time.perf_counter()
            passages = byline.retriever.search(queries[query_id], k=passages_wanted)
            timings.append({"retrieve": (time.perf_counter() - started) * 1000})
            rankings[query_id] = m.unique_in_order(p.article_id for p in passages)[:BEIR_DEPTH]
            predictions.append(
                {
                    "id": query_id,
                    "question": queries[query_id],
                    "relevant": qrels[query_id],
                    "ranking": rankings[query_id],
                    "passages": [_passage_json(p) for p in passages[:RANK_DEPTH]],
                    "ndcg@10": round(m.ndcg_at_k(rankings[query_id], qrels[query_id], 10), 4),
                }
            )
            progress(done, len(qrels), query_id)
    except KeyboardInterrupt:
        interrupted = True
    metrics = summarise_beir(rankings, qrels)
    metrics.update(latency_metrics(timings))
    misses = [
        Miss(p["id"], p["question"], ", ".join(sorted(p["relevant"])), ", ".join(p["ranking"][:3]), "nDCG@10 = 0")
        for p in predictions
        if p["ndcg@10"] == 0
    ]
    return EvalResult(
        kind="beir",
        metrics=metrics,
        config={"queries": len(qrels), "scored": len(rankings), "passages_per_query": passages_wanted},
        predictions=predictions,
        misses=misses,
        interrupted=interrupted,
    )


# -- stores --------------------------------------------------------------------------------------------


def throwaway_settings(settings: Settings, home: Path) -> Settings:
    """The same settings with an empty data dir, the embedded vector store and the SQLite catalog (never a shared
    server: a throwaway run must not write into a team's index)."""
    store = settings.store.model_copy(update={"chroma_url": None, "database_url": None})
    return settings.model_copy(update={"home": home, "store": store})


def settings_config(settings: Settings) -> dict[str, Any]:
    """The settings that shape results, recorded with the metrics."""
    return {
        "answerer": settings.answerer,
        "embedding_model": settings.embedding.model,
        "embedding_backend": settings.embedding.backend,
        "chunk": settings.chunk.model_dump(),
        "retrieval": settings.retrieval.model_dump(),
        "answer": settings.answer.model_dump(),
        "llm_model": settings.llm.model if settings.answerer == "llm" else None,
    }


def ingest_summary(report: IngestReport) -> dict[str, Any]:
    return {
        "articles": report.articles,
        "chunks": report.chunks,
        "failed": len(report.failed),
        "ingest_seconds": round(report.seconds, 2),
    }
