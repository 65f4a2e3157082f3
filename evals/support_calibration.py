"""Calibrates the citation checker's thresholds on the dev set: `python -m evals.support_calibration`.

Two kinds of claims, each checked against one article cut into paragraph passages:
- question-and-answer claims ("<question>: <gold answer>.") against their own article (should hold) and
  against another article (should not): what citing the wrong article looks like;
- `dev-claims.jsonl`: hand-written answer sentences, true ones and on-topic ones the article never makes.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.answering.support import SupportChecker
from bot.answering.context import Source, number_sources
from bot.models import Passage
from bot.settings import LLMSettings, Settings
from ingest.embedding import Embedder

DATA = Path(__file__).resolve().parent / "data"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5)


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
    """Accepted share per claim kind, for each min_support threshold, with max_new_words as configured."""
    claims = labelled_claims()
    questions = {q["id"]: q["question"] for q in _jsonl(DATA / "dev-wikinews.jsonl")}
    written = {row["claim"]: questions[row["question_id"]] for row in _jsonl(DATA / "dev-claims.jsonl")}
    checker = SupportChecker(embedder, defaults.min_support, defaults.max_new_words)
    supports = checker.score([(claim, source) for _, claim, source, _ in claims])
    rows = []
    for threshold in THRESHOLDS:
        checker.min_support = threshold
        accepted: dict[str, list[bool]] = {}
        for (kind, claim, source, _), support in zip(claims, supports, strict=True):
            # A question-and-answer claim is its own question; a written one answers its dev question.
            question = written.get(claim, claim.split(":")[0])
            accepted.setdefault(kind, []).append(checker.supports(claim, source, support, question))
        rows.append({"min_support": threshold} | {k: f"{sum(v)}/{len(v)}" for k, v in sorted(accepted.items())})
    return rows


def main() -> None:
    settings = Settings()
    for row in calibrate(Embedder(settings.embedding), settings.llm):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
