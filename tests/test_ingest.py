"""Ingest against the real model, real Chroma and a real catalog (SQLite, and PostgreSQL where the catalog is
what is tested): idempotence, updates, forget, recovery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from catalog_backends import on_both_catalogs
from conftest import SEED_ARTICLE

from bot.app import Byline
from bot.settings import Settings
from ingest.embedding import Embedder


class CountingEmbedder(Embedder):
    """The real embedder, counting the texts it embeds."""

    def __init__(self, inner: Embedder) -> None:
        self.__dict__.update(inner.__dict__)
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().embed(texts)


@pytest.fixture
def counting(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


@pytest.fixture
def byline(settings: Settings, counting: CountingEmbedder) -> Byline:
    """A Byline on a fresh home whose model counts what it embeds."""
    return Byline(settings, embedder=counting)


def write_article(folder: Path, name: str, title: str, body: str) -> Path:
    path = folder / name
    path.write_text(f"{title}\n\n{body}\n")
    return path


def chroma_ids(byline: Byline) -> set[str]:
    return byline.store.vector_ids()


def catalog_ids(byline: Byline) -> set[str]:
    return {row[0] for row in byline.catalog.fetch("SELECT id FROM chunks")}


@on_both_catalogs
def test_reingest_unchanged_embeds_nothing(byline: Byline, counting: CountingEmbedder, tmp_path: Path) -> None:
    first = byline.ingest([str(SEED_ARTICLE)])
    assert (first.added, first.unchanged) == (1, 0) and counting.embedded == first.chunks > 0
    counting.embedded = 0
    second = byline.ingest([str(SEED_ARTICLE)])
    assert (second.added, second.updated, second.unchanged, second.chunks) == (0, 0, 1, 0)
    assert counting.embedded == 0
    assert chroma_ids(byline) == catalog_ids(byline)


@on_both_catalogs
def test_same_article_under_two_names_is_stored_once(byline: Byline, tmp_path: Path) -> None:
    copy = tmp_path / "copy-of-seed.txt"
    shutil.copy(SEED_ARTICLE, copy)
    report = byline.ingest([str(SEED_ARTICLE), str(copy)])
    assert (report.added, report.unchanged) == (1, 1)
    assert byline.stats()["articles"] == 1
    assert byline.catalog.resolve(str(copy)) == byline.catalog.resolve(str(SEED_ARTICLE))


@on_both_catalogs
def test_changed_article_replaces_its_chunks(byline: Byline, counting: CountingEmbedder, tmp_path: Path) -> None:
    head = "---\nurl: https://news.example/park\n---\nCouncil approves park\n\n"
    path = tmp_path / "park.md"
    path.write_text(head + "The council approved a new park on Elm Street. It will open in May with a playground.")
    byline.ingest([str(path)])
    before = chroma_ids(byline)
    path.write_text(head + "The council approved a new park on Elm Street. It will open in June with a playground.")
    counting.embedded = 0
    report = byline.ingest([str(path)])
    assert (report.added, report.updated) == (0, 1) and counting.embedded == report.chunks > 0
    assert chroma_ids(byline) == catalog_ids(byline) and not (before & chroma_ids(byline))
    texts = [p.text for p in byline.retriever.search("When will the Elm Street park open?")]
    assert any("June" in t for t in texts) and not any("May" in t for t in texts)


@on_both_catalogs
def test_edited_file_without_url_replaces_its_previous_version(byline: Byline, tmp_path: Path) -> None:
    path = write_article(tmp_path, "notes.txt", "Harbour notes", "The ferry leaves at nine every morning.")
    byline.ingest([str(path)])
    write_article(tmp_path, "notes.txt", "Harbour notes", "The ferry leaves at ten every morning.")
    report = byline.ingest([str(path)])
    assert (report.added, report.updated) == (0, 1)
    assert byline.stats()["articles"] == 1 and chroma_ids(byline) == catalog_ids(byline)
    (article_id,) = byline.catalog.resolve(str(path))
    stored = byline.catalog.article(article_id)
    assert stored is not None and "ten every morning" in stored.text


@on_both_catalogs
def test_forget_by_id_url_and_path(byline: Byline, tmp_path: Path) -> None:
    a = write_article(tmp_path, "a.txt", "Alpha story", "Alpha happened on Monday in the town square.")
    b = tmp_path / "b.md"
    b.write_text("---\nurl: https://news.example/beta\n---\nBeta story\n\nBeta happened on Tuesday at the harbour.")
    c = write_article(tmp_path, "c.txt", "Gamma story", "Gamma happened on Friday near the station.")
    byline.ingest([str(a), str(b), str(c)])
    gamma_id = byline.catalog.resolve(str(c))[0]
    removed, missing = byline.forget([str(a), "https://news.example/beta/", gamma_id, "no-such-thing"])
    assert len(removed) == 3 and missing == ["no-such-thing"]
    assert byline.stats()["articles"] == 0 and chroma_ids(byline) == set() and catalog_ids(byline) == set()


def test_failed_inputs_do_not_stop_the_batch(byline: Byline, tmp_path: Path) -> None:
    good = write_article(tmp_path, "good.txt", "Good", "A good article about the new library opening downtown.")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "x", "text": "Fine record about the zoo."}\n{broken\n')
    report = byline.ingest([str(good), str(bad), str(tmp_path / "missing.html")])
    assert report.added == 2 and len(report.failed) == 2
    assert {f.source for f in report.failed} == {f"{bad}:2", str(tmp_path / "missing.html")}


@on_both_catalogs
def test_interrupted_write_keeps_old_version_and_next_open_sweeps(
    byline: Byline, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rates.md"
    head = "---\nurl: https://news.example/rates\n---\nBank holds rates\n\n"
    path.write_text(head + "The central bank held its main rate at 4.5 percent on Thursday.")
    byline.ingest([str(path)])
    old_ids = chroma_ids(byline)
    path.write_text(head + "The central bank cut its main rate to 4.25 percent on Thursday.")

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies after the vectors went in, before the catalog switched

    monkeypatch.setattr(byline.catalog, "commit_articles", crash)
    with pytest.raises(KeyboardInterrupt):
        byline.ingest([str(path)])
    assert chroma_ids(byline) > old_ids  # new vectors are there, but not visible:
    assert "4.5 percent" in byline.ask("What rate did the central bank hold?").text
    monkeypatch.undo()

    reopened = Byline(byline.settings, embedder=embedder)
    assert chroma_ids(reopened) == old_ids == catalog_ids(reopened)
    report = reopened.ingest([str(path)])
    assert report.updated == 1
    assert "4.25 percent" in reopened.ask("What rate did the central bank set?").text
    assert chroma_ids(reopened) == catalog_ids(reopened)


@on_both_catalogs
def test_opening_the_index_during_another_write_leaves_that_write_alone(
    byline: Byline, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An asker starting while an ingest is between its vector upsert and catalog switch (seen under CI load)."""
    path = write_article(tmp_path, "zoo.txt", "Zoo gets pandas", "The city zoo received two giant pandas on Monday.")
    switch = byline.catalog.commit_articles
    openers: list[Byline] = []

    def another_process_opens_first(*args: object, **kwargs: object) -> list[str]:
        asker = Byline(byline.settings, embedder=embedder)
        asker.store.open()  # opening is when leftovers are swept
        openers.append(asker)
        return switch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(byline.catalog, "commit_articles", another_process_opens_first)
    assert byline.ingest([str(path)]).added == 1
    assert openers and chroma_ids(byline) == catalog_ids(byline) != set()
    assert "pandas" in openers[0].ask("What did the zoo receive?").text


def test_ask_json_shape_and_quotes_are_exact(seeded: Byline) -> None:
    answer = seeded.ask("Why did Jack Dorsey call Ilhan Omar?")
    data = json.loads(json.dumps(answer.to_dict()))
    assert set(data) >= {"question", "answer", "refused", "citations", "passages", "timings_ms"}
    assert data["refused"] is False and data["citations"]
    assert set(data["timings_ms"]) >= {"retrieve", "answer", "total"}
    for citation in data["citations"]:
        assert set(citation) >= {
            "n",
            "article_id",
            "title",
            "url",
            "path",
            "source",
            "published_at",
            "quote",
            "start",
            "end",
            "score",
        }
        stored = seeded.catalog.article(citation["article_id"])
        text = stored.text if stored else None
        assert text is not None and text[citation["start"] : citation["end"]] == citation["quote"]
        assert f"[{citation['n']}]" in data["answer"]
    first = data["citations"][0]
    assert first["path"].endswith("the-hill-dorsey-omar.txt") and "MORE" not in first["quote"]
    scores = [p["score"] for p in data["passages"]]
    assert scores == sorted(scores, reverse=True)
    assert set(data["passages"][0]) == {"article_id", "title", "url", "text", "score"}


def test_a_how_many_question_with_no_figure_in_the_articles_is_refused(byline: Byline, tmp_path: Path) -> None:
    body = (
        "The city zoo welcomed a new family of giant pandas on Monday, its director said. "
        "Visitors queued for hours outside the enclosure to see the pandas, and keepers said the animals settled in."
    )
    byline.ingest([str(write_article(tmp_path, "zoo.txt", "Pandas arrive at city zoo", body))])
    assert byline.ask("How many visitors saw the pandas on Monday?").refused  # on topic, but no number anywhere
    counted = body.replace("Visitors queued", "About 4,000 visitors queued")
    byline.ingest([str(write_article(tmp_path, "zoo.txt", "Pandas arrive at city zoo", counted))])
    answer = byline.ask("How many visitors saw the pandas on Monday?")
    assert not answer.refused and "4,000" in answer.text


def test_off_topic_question_is_refused(seeded: Byline) -> None:
    answer = seeded.ask("What is the recipe for a good sourdough bread starter?")
    assert answer.refused and answer.citations == [] and answer.text.startswith("I couldn't find that")
