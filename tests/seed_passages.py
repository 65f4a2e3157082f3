"""Passages cut from the real seed articles, one per paragraph, for answerer tests that need no index."""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from bot.models import Passage

SEED_JSONL = Path(__file__).resolve().parent.parent / "seeds" / "wikinews-2019-sample.jsonl"


@cache
def seed_articles() -> dict[str, dict[str, Any]]:
    """The Wikinews seed articles by a short key: the first word of the title, lower-cased."""
    articles: dict[str, dict[str, Any]] = {}
    for line in SEED_JSONL.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        articles.setdefault(record["title"].split()[0].lower(), record)
    return articles


def article_text(key: str) -> str:
    return str(seed_articles()[key]["text"])


def passages(key: str, paragraphs: slice | None = None) -> list[Passage]:
    """The article's paragraphs as Passages, offsets into its text (all of them unless `paragraphs`)."""
    record = seed_articles()[key]
    spans = list(re.finditer(r"[^\n]+", record["text"]))[paragraphs or slice(None)]
    return [
        Passage(
            chunk_id=f"{record['id']}:{match.start()}",
            article_id=record["id"],
            text=match.group(),
            start=match.start(),
            end=match.end(),
            title=record["title"],
            url=record["url"],
            source=record["source"],
            published_at=datetime.fromisoformat(record["date"]),
            score=1.0,
        )
        for match in spans
    ]
