"""Sentence- and token-aware chunking: no chunk exceeds the embedding window, offsets stay exact."""

from __future__ import annotations

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


def chunk_articles(articles: list[Article], counter: TokenCounter, plan: ChunkPlan) -> list[list[Chunk]]:
    """Chunks for each article, tokenising all sentences of the batch in one call."""
    headers = [chunk_header(a) for a in articles]
    spans = [split_sentences(a.text) for a in articles]
    flat = headers + [a.text[s:e] for a, sp in zip(articles, spans, strict=True) for s, e in sp]
    offsets = counter.token_offsets(flat)
    header_tokens, sentence_offsets = offsets[: len(articles)], offsets[len(articles) :]
    result, cursor = [], 0
    for article, header, header_toks, sentence_spans in zip(articles, headers, header_tokens, spans, strict=True):
        pieces = sentence_offsets[cursor : cursor + len(sentence_spans)]
        cursor += len(sentence_spans)
        header, budget = _header_and_budget(header, len(header_toks), plan)
        units = _sentence_units(sentence_spans, pieces, budget)
        result.append(_pack(article, header, units, budget, plan.overlap_sentences))
    return result


def embed_headers(articles: list[Article], counter: TokenCounter, plan: ChunkPlan) -> list[str]:
    """The header each article's chunks are embedded with, as `chunk_articles` decides it."""
    headers = [chunk_header(a) for a in articles]
    offsets = counter.token_offsets(headers)
    return [_header_and_budget(h, len(o), plan)[0] for h, o in zip(headers, offsets, strict=True)]


def _header_and_budget(header: str, header_tokens: int, plan: ChunkPlan) -> tuple[str, int]:
    """The header to embed and the word pieces left for text."""
    budget = plan.max_tokens - _SPECIAL_TOKENS - header_tokens - 1
    if budget < 16:  # an absurd title: embed without a header rather than without text
        return "", plan.max_tokens - _SPECIAL_TOKENS
    return header, budget


def _sentence_units(
    spans: list[tuple[int, int]], pieces: list[list[tuple[int, int]]], budget: int
) -> list[tuple[int, int, int]]:
    """(start, end, tokens) per sentence; a sentence longer than the budget is cut at word-piece bounds."""
    units = []
    for (start, end), offs in zip(spans, pieces, strict=True):
        if len(offs) <= budget:
            units.append((start, end, len(offs)))
            continue
        for i in range(0, len(offs), budget):
            window = offs[i : i + budget]
            a = start + window[0][0]
            b = start + window[-1][1] if i + budget >= len(offs) else start + offs[i + budget][0]
            units.append((a, b, len(window)))
    return units


def _pack(article: Article, header: str, units: list[tuple[int, int, int]], budget: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, used = i, 0
        # The +1 per join allows for a word piece lost or gained where sentences meet.
        while j < len(units) and used + units[j][2] + (j > i) <= budget:
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
                content_hash=article.content_hash,
            )
        )
        if j >= len(units):
            break
        # Overlap: repeat trailing sentences, but always move forward.
        i = max(j - overlap, i + 1)
    return chunks
