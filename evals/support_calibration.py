"""Calibrates the citation checker's thresholds on the dev set: `python -m evals.support_calibration`.

Support (`min_support`): two kinds of claims, each checked against one article cut into paragraph passages:
- question-and-answer claims ("<question>: <gold answer>.") against their own article (should hold) and
  against another article (should not): what citing the wrong article looks like;
- `dev-claims.jsonl`: hand-written answer sentences, true ones and on-topic ones the article never makes.
Each row is given twice: the support tests alone, and with the relevance test at the configured `min_relevance`.

Relevance (`min_relevance`), for each answerable dev question:
- the article sentence holding its evidence quote, as an answer sentence (should pass);
- the sentence after it, as a second sentence that follows on from the first (should mostly pass);
- the hand-written true claims of `dev-claims.jsonl` (should pass);
- `dev-injected-replies.jsonl`, what a model that obeyed an injected instruction says ("HACKED", an
  advertisement, a planted claim), as if citing the question's article (should fail).
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.answering.context import Source, number_sources
from bot.answering.support import SupportChecker, Vectors
from bot.models import Passage
from bot.settings import LLMSettings, Settings
from ingest.embedding import Embedder
from ingest.text import split_sentences

DATA = Path(__file__).resolve().parent / "data"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5)
RELEVANCE_THRESHOLDS = (0.0, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def article_source(record: dict[str, Any]) -> Source:
    """The article as one source of paragraph passages."""
    passages = [
        Passage(
            chunk_id=f"{record['id']}:{m.start()}",
            article_id=record["id"],
            text=m.group(),
            start=m.start(),
            end=m.end(),
            title=record["title"],
            source=record.get("source"),
            published_at=datetime.fromisoformat(record["date"]),
        )
        for m in re.finditer(r"[^\n]+", record["text"])
    ]
    return number_sources(passages)[0]


def labelled_claims() -> list[tuple[str, str, Source, bool]]:
    """(kind, claim, source, supported) for every dev claim; the wrong-article pairing is seeded."""
    articles = {r["url"]: r for r in _jsonl(DATA / "dev-wikinews-articles.jsonl")}
    sources = {url: article_source(record) for url, record in articles.items()}
    questions = {q["id"]: q for q in _jsonl(DATA / "dev-wikinews.jsonl")}
    rng = random.Random(1)
    claims: list[tuple[str, str, Source, bool]] = []
    for q in questions.values():
        if not q["answerable"] or not q["evidence"] or q["evidence"][0].get("url") not in sources:
            continue
        url = q["evidence"][0]["url"]
        claim = f"{q['question'].rstrip('?')}: {q['answers'][0]}."
        other = rng.choice([u for u in sources if u != url])
        claims += [("qa-own-article", claim, sources[url], True), ("qa-other-article", claim, sources[other], False)]
    for row in _jsonl(DATA / "dev-claims.jsonl"):
        kind = "written-true" if row["supported"] else "written-false"
        claims.append((kind, row["claim"], sources[row["url"]], row["supported"]))
    return claims


def calibrate(embedder: Embedder, defaults: LLMSettings) -> list[dict[str, Any]]:
    """Accepted share per claim kind, for each min_support threshold, with max_new_words as configured; then
    the same with the relevance test at the configured min_relevance."""
    claims = labelled_claims()
    questions = {q["id"]: q["question"] for q in _jsonl(DATA / "dev-wikinews.jsonl")}
    written = {row["claim"]: questions[row["question_id"]] for row in _jsonl(DATA / "dev-claims.jsonl")}
    checker = SupportChecker(embedder, defaults.min_support, defaults.max_new_words, defaults.min_relevance)
    vectors: Vectors = {}
    supports = checker.score([(claim, source) for _, claim, source, _ in claims], vectors)
    # A question-and-answer claim is its own question; a written one answers its dev question.
    asked = [written.get(claim, claim.split(":")[0]) for _, claim, _, _ in claims]
    relevant = [
        checker.relevance(claim, [question], vectors) >= checker.relevance_bar(question, [source], vectors)
        for (_, claim, source, _), question in zip(claims, asked, strict=True)
    ]
    rows = []
    for with_relevance in (False, True):
        for threshold in THRESHOLDS:
            checker.min_support = threshold
            accepted: dict[str, list[bool]] = {}
            for (kind, claim, source, _), support, question, bears in zip(
                claims, supports, asked, relevant, strict=True
            ):
                held = checker.supports(claim, source, support, question) and (bears or not with_relevance)
                accepted.setdefault(kind, []).append(held)
            rows.append(
                {"min_support": threshold, "min_relevance": defaults.min_relevance if with_relevance else None}
                | {k: f"{sum(v)}/{len(v)}" for k, v in sorted(accepted.items())}
            )
    return rows


def relevance_cases() -> list[tuple[str, str, str, str, Source]]:
    """(kind, question, claim, the answer's sentence before it, the article) for the relevance calibration."""
    articles = {r["url"]: r for r in _jsonl(DATA / "dev-wikinews-articles.jsonl")}
    questions = {q["id"]: q for q in _jsonl(DATA / "dev-wikinews.jsonl")}
    replies = [row["reply"] for row in _jsonl(DATA / "dev-injected-replies.jsonl")]
    cases: list[tuple[str, str, str, str, Source]] = []
    for q in questions.values():
        for evidence in q["evidence"]:
            record = articles.get(evidence["url"])
            if record is None:
                continue
            text, source = record["text"], article_source(record)
            spans = split_sentences(text)
            quote = " ".join(evidence["quote"].split())
            found = [i for i, (a, b) in enumerate(spans) if quote in " ".join(text[a:b].split())]
            if found:
                i = found[0]
                answer = text[spans[i][0] : spans[i][1]]
                cases.append(("answer-sentence", q["question"], answer, "", source))
                if i + 1 < len(spans):
                    follow_on = text[spans[i + 1][0] : spans[i + 1][1]]
                    cases.append(("follow-on-sentence", q["question"], follow_on, answer, source))
            cases += [("injected-reply", q["question"], reply, "", source) for reply in replies]
    for row in _jsonl(DATA / "dev-claims.jsonl"):
        if row["supported"]:
            record = articles[row["url"]]
            question = questions[row["question_id"]]["question"]
            cases.append(("written-true", question, row["claim"], "", article_source(record)))
    return cases


def calibrate_relevance(embedder: Embedder, defaults: LLMSettings) -> list[dict[str, Any]]:
    """Share of each kind of sentence that passes the relevance test, for each min_relevance threshold."""
    cases = relevance_cases()
    # At min_relevance 1 the bar is what a vague question lowers it to; the thresholds tried cap it.
    checker = SupportChecker(embedder, defaults.min_support, defaults.max_new_words, min_relevance=1.0)
    vectors: Vectors = {}
    scores = [checker.relevance(claim, [question, before], vectors) for _, question, claim, before, _ in cases]
    floors: dict[tuple[str, int], float] = {}
    for _, question, _, _, source in cases:
        if (question, id(source)) not in floors:
            floors[(question, id(source))] = checker.relevance_bar(question, [source], vectors)
    rows = []
    for threshold in RELEVANCE_THRESHOLDS:
        passed: dict[str, list[bool]] = {}
        for (kind, question, _, _, source), score in zip(cases, scores, strict=True):
            passed.setdefault(kind, []).append(score >= min(threshold, floors[(question, id(source))]))
        rows.append({"min_relevance": threshold} | {k: f"{sum(v)}/{len(v)}" for k, v in sorted(passed.items())})
    return rows


def main() -> None:
    settings = Settings()
    embedder = Embedder(settings.embedding)
    for row in calibrate(embedder, settings.llm) + calibrate_relevance(embedder, settings.llm):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
