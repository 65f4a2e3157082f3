"""Chunks never exceed the model window, keep exact offsets, and overlap by whole sentences."""

from __future__ import annotations

import itertools

from conftest import SEED_JSONL

from ingest.chunking import ChunkPlan, chunk_articles, chunk_header
from ingest.embedding import Embedder
from ingest.loaders import load_sources
from ingest.models import Article


def window_tokens(embedder: Embedder, text: str) -> int:
    encoding = embedder.model.tokenizer(text, add_special_tokens=True, truncation=False)
    return len(encoding["input_ids"])


def test_seed_chunks_fit_window_and_offsets_are_exact(embedder: Embedder) -> None:
    articles = [a for a in load_sources([str(SEED_JSONL)]) if isinstance(a, Article)]
    plan = ChunkPlan(max_tokens=embedder.max_tokens, overlap_sentences=1)
    for article, chunks in zip(articles, chunk_articles(articles, embedder, plan), strict=True):
        assert chunks, article.title
        covered = 0
        for chunk in chunks:
            assert article.text[chunk.start : chunk.end] == chunk.text
            assert window_tokens(embedder, chunk.embed_text) <= embedder.max_tokens
            assert chunk.start <= covered  # no gap between consecutive chunks
            covered = max(covered, chunk.end)
            assert chunk.header == chunk_header(article) and article.title in chunk.embed_text
        assert covered == len(article.text)


def test_overlap_repeats_one_sentence_and_small_windows_still_cover(embedder: Embedder) -> None:
    text = " ".join(f"Sentence number {i} talks about the harbour bridge repairs in some detail." for i in range(40))
    article = Article(id="a", title="Bridge", text=text, source="Gazette")
    (chunks,) = chunk_articles([article], embedder, ChunkPlan(max_tokens=64, overlap_sentences=1))
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # the last sentence of one chunk starts the next
        assert window_tokens(embedder, after.embed_text) <= 64


def test_a_sentence_longer_than_the_window_is_cut_not_truncated(embedder: Embedder) -> None:
    text = "word " * 900 + "end."
    article = Article(id="b", title="Long", text=text.strip())
    (chunks,) = chunk_articles([article], embedder, ChunkPlan(max_tokens=128, overlap_sentences=0))
    assert len(chunks) >= 8
    assert chunks[-1].text.endswith("end.")
    assert all(window_tokens(embedder, c.embed_text) <= 128 for c in chunks)
    assert "".join(article.text[c.start : c.end] for c in chunks).replace(" ", "") == text.replace(" ", "")
