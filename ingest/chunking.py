"""Sentence- and token-aware chunking: no chunk exceeds the embedding window, offsets stay exact."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ingest.models import Article, Chunk
from ingest.text import split_sentences

# [CLS] and [SEP] (or the model's equivalents) take two places in the window.
_SPECIAL_TOKENS = 2


class TokenCounter(Protocol):
    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]: ...


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    max_tokens: int  # window for header + text, special tokens included
    overlap_sentences: int


def chunk_header(article: Article) -> str:
    """Short context embedded with every chunk: title, outlet and date."""
    parts = [article.title]
    if article.source:
        parts.append(article.source)
    if article.published_at:
        parts.append(article.published_at.date().isoformat())
    return " · ".join(p for p in parts if p)


# Sentences go to the tokenizer in calls of about this many characters, and a longer sentence is cut (at a space
# when there is one): a call's word-piece offsets (about 120 bytes each) are all held at once, so memory follows
# this figure, not the size of the largest article.
_TOKENIZE_CHARS = 65_536
# A chunk holds at most this many characters per word piece of its budget. Real text has 3-6; a run of letters
# with no space is one unknown word piece however long it is, and would otherwise make one chunk of it all.
_MAX_CHARS_PER_TOKEN = 16

Unit = tuple[int, int, int]  # (start, end, word pieces) of a sentence, or of a piece of one


def chunk_articles(articles: list[Article], counter: TokenCounter, plan: ChunkPlan) -> list[list[Chunk]]:
    """Chunks for each article, tokenising the sentences of the batch in a few bounded calls."""
    headers, budgets = [], []
    for header, budget in _headers_and_budgets(articles, counter, plan):
        headers.append(header)
        budgets.append(budget)
    units: list[list[Unit]] = [[] for _ in articles]
    spans = (
        (i, span) for i, a in enumerate(articles) for s, e in split_sentences(a.text) for span in _cut(a.text, s, e)
    )
    for call in _calls(spans, _TOKENIZE_CHARS):
        offsets = counter.token_offsets([articles[i].text[s:e] for i, (s, e) in call])
        for (i, span), pieces in zip(call, offsets, strict=True):
            units[i] += _sentence_units(span, pieces, budgets[i])
    return [
        _pack(article, header, article_units, budget, plan.overlap_sentences)
        for article, header, article_units, budget in zip(articles, headers, units, budgets, strict=True)
    ]


def embed_headers(articles: list[Article], counter: TokenCounter, plan: ChunkPlan) -> list[str]:
    """The header each article's chunks are embedded with, as `chunk_articles` decides it."""
    return [header for header, _ in _headers_and_budgets(articles, counter, plan)]


def _headers_and_budgets(articles: list[Article], counter: TokenCounter, plan: ChunkPlan) -> list[tuple[str, int]]:
    """Per article, the header to embed with its chunks and the word pieces left for text."""
    headers = [chunk_header(a) for a in articles]
    found = []
    for header, header_tokens in zip(headers, counter.token_offsets(headers), strict=True):
        budget = plan.max_tokens - _SPECIAL_TOKENS - len(header_tokens) - 1
        if budget < 16:  # an absurd title: embed without a header rather than without text
            header, budget = "", plan.max_tokens - _SPECIAL_TOKENS
        found.append((header, budget))
    return found


def _cut(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """A sentence span in pieces of at most `_TOKENIZE_CHARS`, each cut after a space when there is one."""
    while end - start > _TOKENIZE_CHARS:
        limit = start + _TOKENIZE_CHARS
        space = text.rfind(" ", start + _TOKENIZE_CHARS // 2, limit)
        cut = space + 1 if space >= 0 else limit
        yield start, cut
        start = cut
    yield start, end


def _calls(spans: Iterable[tuple[int, tuple[int, int]]], chars: int) -> Iterator[list[tuple[int, tuple[int, int]]]]:
    """Spans grouped into tokenizer calls of about `chars` characters."""
    call: list[tuple[int, tuple[int, int]]] = []
    size = 0
    for item in spans:
        call.append(item)
        size += item[1][1] - item[1][0]
        if size >= chars:
            yield call
            call, size = [], 0
    if call:
        yield call


def _sentence_units(span: tuple[int, int], offsets: list[tuple[int, int]], budget: int) -> list[Unit]:
    """(start, end, tokens) for a sentence; one longer than the budget is cut at word-piece bounds, and a piece
    longer than the character cap at character bounds."""
    start, end = span
    if len(offsets) <= budget:
        return _capped(start, end, len(offsets), budget)
    units = []
    for i in range(0, len(offsets), budget):
        window = offsets[i : i + budget]
        a = start + window[0][0]
        b = start + window[-1][1] if i + budget >= len(offsets) else start + offsets[i + budget][0]
        units += _capped(a, b, len(window), budget)
    return units


def _capped(start: int, end: int, tokens: int, budget: int) -> list[Unit]:
    most = budget * _MAX_CHARS_PER_TOKEN
    if end - start <= most:
        return [(start, end, tokens)]
    cuts = range(start, end, most)  # a giant unknown word: its pieces share its word pieces
    return [(a, min(a + most, end), max(1, tokens // len(cuts))) for a in cuts]


def _pack(article: Article, header: str, units: list[Unit], budget: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    content_hash = article.content_hash  # hashes the whole text: once, not once per chunk
    i = 0
    while i < len(units):
        j, used = i, 0
        # The +1 per join allows for a word piece lost or gained where sentences meet.
        while (
            j < len(units)
            and used + units[j][2] + (j > i) <= budget
            and units[j][1] - units[i][0] <= budget * _MAX_CHARS_PER_TOKEN
        ):
            used += units[j][2] + (j > i)
            j += 1
        j = max(j, i + 1)
        start, end = units[i][0], units[j - 1][1]
        chunks.append(
            Chunk(
                article_id=article.id,
                position=len(chunks),
                start=start,
                end=end,
                text=article.text[start:end],
                header=header,
                token_count=used,
                content_hash=content_hash,
            )
        )
        if j >= len(units):
            break
        # Overlap: repeat trailing sentences, but always move forward.
        i = max(j - overlap, i + 1)
    return chunks
