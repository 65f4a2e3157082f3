"""Byline's parts handed in: an ephemeral Chroma client and a small hashing embedder, for tests about plumbing.

These check the wiring (ingest -> store -> retrieval -> answer, through the LangChain chain and retriever), not
quality, so a model-free embedder is enough and the whole file runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import chromadb
import numpy as np
import pytest
from langchain_core.documents import Document

from bot.app import Byline
from bot.models import Answer
from bot.settings import Settings
from ingest.chunking import ChunkPlan
from ingest.config import EmbeddingSettings
from ingest.embedding import Embedder
from ingest.storage.sqlite import SQLiteCatalog
from ingest.storage.store import Store

_TOKEN = re.compile(r"\S+")
DIMENSION = 64


class HashingEmbedder(Embedder):
    """Words hashed into a 64-dimensional bag; whitespace tokens stand in for word pieces."""

    def __init__(self) -> None:
        super().__init__(EmbeddingSettings())
        self.embedded: list[str] = []

    @property
    def dimension(self) -> int:
        return DIMENSION

    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in _TOKEN.finditer(text)] for text in texts]

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(offsets) for offsets in self.token_offsets(texts)]

    def embed(self, texts: list[str]) -> np.ndarray:
        self.embedded += texts
        vectors = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


@pytest.fixture
def ephemeral() -> Iterator[chromadb.ClientAPI]:
    client = chromadb.EphemeralClient()
    yield client
    for collection in client.list_collections():  # in-memory clients share one process-wide store
        client.delete_collection(collection.name)


@pytest.fixture
def plumbed(tmp_path: Path, ephemeral: chromadb.ClientAPI) -> Byline:
    settings = Settings(home=tmp_path / "home")
    embedder = HashingEmbedder()
    plan = ChunkPlan(max_tokens=64, overlap_sentences=1)
    catalog = SQLiteCatalog(settings.home / "catalog.sqlite")
    store = Store(catalog, settings.store, home=settings.home, embedding_model="hashing", plan=plan, client=ephemeral)
    return Byline(settings, embedder=embedder, store=store)


ARTICLES = [
    {
        "title": "Harbour bridge reopens",
        "url": "https://news.example/bridge",
        "text": "The harbour bridge reopened on Monday after three years of repairs. The mayor cut the ribbon.",
    },
    {
        "title": "Orchestra names conductor",
        "url": "https://news.example/orchestra",
        "text": "The city orchestra named Ilse Vandermeer its new conductor. She starts in September.",
    },
]


def ingest(byline: Byline, tmp_path: Path) -> None:
    source = tmp_path / "news.jsonl"
    source.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES))
    report = byline.ingest([str(source)])
    assert report.added == 2 and not report.failed


def test_the_parts_handed_in_are_the_ones_used(plumbed: Byline, ephemeral: chromadb.ClientAPI, tmp_path: Path) -> None:
    ingest(plumbed, tmp_path)
    assert isinstance(plumbed.embedder, HashingEmbedder) and plumbed.embedder.embedded
    assert sum(c.count() for c in ephemeral.list_collections()) == plumbed.stats()["chunks"] == 2
    assert not (tmp_path / "home" / "chroma").exists()  # nothing persisted: the vectors live in the given client


def test_the_chain_answers_as_ask_does(plumbed: Byline, tmp_path: Path) -> None:
    ingest(plumbed, tmp_path)
    via_chain = plumbed.chain.invoke("Who is the orchestra's new conductor?")
    via_ask = plumbed.ask("Who is the orchestra's new conductor?")
    assert isinstance(via_chain, Answer)
    assert via_chain.text == via_ask.text and via_chain.citations == via_ask.citations
    assert {"retrieve", "answer", "total"} <= via_chain.timings_ms.keys()
    batch = plumbed.chain.batch([{"question": "When did the bridge reopen?", "k": 1}, "Who cut the ribbon?"])
    assert [len(a.passages) for a in batch] == [1, min(2, plumbed.settings.retrieval.k)]


def test_the_retriever_is_a_langchain_retriever(plumbed: Byline, tmp_path: Path) -> None:
    ingest(plumbed, tmp_path)
    documents = plumbed.retriever.invoke("harbour bridge repairs")
    assert documents and all(isinstance(d, Document) for d in documents)
    top = documents[0]
    assert top.metadata["title"] == "Harbour bridge reopens" and top.metadata["url"] == "https://news.example/bridge"
    assert top.page_content in ARTICLES[0]["text"]
    assert top.metadata["start"] == ARTICLES[0]["text"].index(top.page_content)
    assert plumbed.retriever.invoke("conductor", k=1)[0].metadata["title"] == "Orchestra names conductor"


def test_recent_articles_are_the_latest_published_of_the_index(plumbed: Byline, tmp_path: Path) -> None:
    source = tmp_path / "dated.jsonl"
    dated = [
        {"title": "Undated feature", "text": "A feature on harbour life with no date at all."},
        {"title": "Older story", "date": "2019-03-01", "source": "The Hill", "text": "An older story on the bridge."},
        {"title": "Newest story", "date": "2019-05-02", "text": "The newest story on the orchestra."},
        {"title": "Middle story", "date": "2019-04-10", "text": "A story in between about the mayor."},
    ]
    source.write_text("".join(json.dumps(a) + "\n" for a in dated))
    assert plumbed.ingest([str(source)]).added == 4
    recent = plumbed.recent_articles(3)
    assert [h.title for h in recent] == ["Newest story", "Middle story", "Older story"]
    assert recent[2].source == "The Hill" and recent[2].published_at is not None
    assert recent[2].published_at.startswith("2019-03-01")
    assert [h.title for h in plumbed.recent_articles(10)][-1] == "Undated feature"
    plumbed.forget([recent[0].article_id])
    assert [h.title for h in plumbed.recent_articles(1)] == ["Middle story"]
