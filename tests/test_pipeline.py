"""The ingest pipeline: overlapped stages, vector reuse for unchanged chunks, failures surfacing from the producer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.app import Byline
from ingest.embedding import Embedder
from ingest.loaders import LoadResult, make_article

pytestmark = pytest.mark.slow


class CountingEmbedder(Embedder):
    """The real embedder, remembering what it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.__dict__.update(inner.__dict__)
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return super().embed(texts)


PARAGRAPHS = [
    f"Paragraph {n} of the council report. The committee met on day {n} to discuss the harbour budget, "
    f"the ferry timetable and the repairs to pier number {n}, which were delayed by storms. " * 3
    for n in range(1, 9)
]


def test_an_edited_article_embeds_only_its_changed_chunks(byline: Byline, embedder: Embedder, tmp_path: Path) -> None:
    counter = CountingEmbedder(embedder)
    byline = Byline(byline.settings, embedder=counter)
    story = tmp_path / "harbour.md"
    head = "---\nurl: https://news.example/harbour\n---\nHarbour budget\n\n"
    story.write_text(head + "\n\n".join(PARAGRAPHS))
    first = byline.ingest([str(story)])
    assert first.chunks >= 4 and first.reused_chunks == 0
    counter.texts.clear()

    edited = [*PARAGRAPHS[:-1], "The last paragraph was rewritten: the pier reopens in June after the repairs."]
    story.write_text(head + "\n\n".join(edited))
    second = byline.ingest([str(story)])
    assert second.updated == 1 and second.reused_chunks >= 2
    assert len(counter.texts) == second.chunks - second.reused_chunks  # only new text went through the model
    assert all("rewritten" in t or "Paragraph 8" in t or "Paragraph 7" in t for t in counter.texts)
    # The kept vectors are the stored ones: the index answers as if everything had been embedded afresh.
    ids = sorted(byline.store.vector_ids())
    rows = byline.store.chunk_rows(ids)
    stored = byline.store.vectors(ids)
    # the header: the title and the outlet, named after the URL's domain
    fresh = embedder.embed([f"Harbour budget · news.example\n{rows[chunk_id].text}" for chunk_id in ids])
    assert np.allclose(np.stack([stored[chunk_id] for chunk_id in ids]), fresh, atol=2e-2)
    passages = byline.retriever.search("When does the pier reopen?")
    assert any("June" in p.text for p in passages)


def test_a_failure_while_loading_reaches_the_caller(byline: Byline) -> None:
    def results() -> Iterator[LoadResult]:
        yield make_article(title="Bridge", text="The new bridge opened on Monday after three years of work.")
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="the disk went away"):
        byline.ingest_results(results())
    assert byline.stats()["articles"] == 0  # nothing half-written: the batch was never handed over
    report = byline.ingest_results(iter([make_article(title="Bridge", text="The new bridge opened on Monday.")]))
    assert report.added == 1 and byline.retriever.search("bridge opened")
