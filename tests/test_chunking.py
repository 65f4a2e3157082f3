"""Chunks never exceed the model window, keep exact offsets, and overlap by whole sentences."""

from __future__ import annotations

import itertools

from conftest import SEED_JSONL

from ingest import chunking
from ingest.chunking import ChunkPlan, chunk_articles, chunk_header
from ingest.embedding import Embedder
from ingest.models import Article
from ingest.sources import load_sources


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


class CallRecorder:
    """The real tokenizer, remembering how many characters each call was given."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        self.calls.append(sum(map(len, texts)))
        return self.inner.token_offsets(texts)


def test_a_huge_sentence_is_tokenised_in_bounded_calls(embedder: Embedder) -> None:
    """One sentence of 600,000 characters: the tokenizer never sees much more than a call's worth at once (its
    offsets would otherwise all be held together), and the chunks still cover the text exactly."""
    text = "harbour " * 75_000
    article = Article(id="c", title="Run on", text=text.strip())
    recorder = CallRecorder(embedder)
    (chunks,) = chunk_articles([article], recorder, ChunkPlan(max_tokens=128, overlap_sentences=0))
    assert max(recorder.calls[1:]) < 2 * chunking._TOKENIZE_CHARS < len(text)
    assert all(article.text[c.start : c.end] == c.text for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")
    assert all(window_tokens(embedder, c.embed_text) <= 128 for c in chunks)


def test_a_run_of_letters_with_no_space_is_cut_into_chunks_of_bounded_length(embedder: Embedder) -> None:
    """A run of letters with no space is one unknown word piece however long: it is cut by characters, not
    kept as one chunk of 300,000 characters."""
    text = "x" * 300_000 + " Then a real sentence follows."
    article = Article(id="d", title="Noise", text=text)
    (chunks,) = chunk_articles([article], embedder, ChunkPlan(max_tokens=128, overlap_sentences=1))
    longest = max(c.end - c.start for c in chunks)
    assert longest <= 128 * chunking._MAX_CHARS_PER_TOKEN and len(chunks) > 100
    assert all(article.text[c.start : c.end] == c.text for c in chunks)
    covered = 0
    for chunk in chunks:
        assert chunk.start <= covered
        covered = max(covered, chunk.end)
    assert covered == len(text) and chunks[-1].text.endswith("Then a real sentence follows.")
