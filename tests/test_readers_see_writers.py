"""Several Bylines on one home, as several processes are (each opens its own embedded Chroma instance): a warm
reader keeps answering, and sees what the others ingest and forget from its next question on; a writer that
opened the index earlier never saves an older index over a newer one; two ingests of the same articles count
each article once. Each runs on both catalogs, SQLite and PostgreSQL (the write generation lives in the catalog)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
from catalog_backends import on_both_catalogs

from bot.app import Byline
from bot.settings import Settings
from ingest.embedding import Embedder
from ingest.models import SearchFilters

BYLINE = Path(sys.executable).with_name("byline")
NEW = [
    {
        "url": "https://gamma.example/lighthouse",
        "source": "Gamma Post",
        "date": "2019-07-04",
        "title": "Lighthouse keeper retires",
        "text": "Marit Solheim retired on Friday after thirty-one years as keeper of the Utvaer lighthouse. "
        "The lighthouse will be run automatically from next month.",
    },
    {
        "url": "https://gamma.example/glacier",
        "source": "Gamma Post",
        "date": "2019-07-05",
        "title": "Glacier shrinks by record",
        "text": "The Brennvik glacier lost 62 metres of length this year, the largest retreat measured since "
        "records began in 1902.",
    },
    {
        "url": "https://gamma.example/ferry",
        "source": "Gamma Post",
        "date": "2019-07-06",
        "title": "Night ferry cancelled",
        "text": "The Tromsnes night ferry was cancelled for the summer after its engine failed on Tuesday.",
    },
]


@pytest.fixture
def seeded(seeded_on_both: Byline) -> Byline:
    return seeded_on_both


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def cited(byline: Byline, question: str, **kwargs: object) -> set[str]:
    return {c.url or "" for c in byline.ask(question, **kwargs).citations}  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_warm_reader_sees_what_a_byline_ingest_process_adds(seeded: Byline, tmp_path: Path) -> None:
    """The reported failure: a warm Byline asking while `byline ingest` adds three articles in another process."""
    reader = seeded
    assert reader.ask("What happened in Magnitogorsk?").citations
    env = {**os.environ, "BYLINE_HOME": str(reader.settings.home)}
    path = write_jsonl(tmp_path / "new.jsonl", NEW)
    done = subprocess.run([str(BYLINE), "ingest", str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    july = SearchFilters(since=date(2019, 7, 1))
    assert "https://gamma.example/glacier" in cited(reader, "How much did the Brennvik glacier shrink?", filters=july)
    assert "https://gamma.example/lighthouse" in cited(reader, "How long was Marit Solheim lighthouse keeper?")


def test_a_warm_reader_sees_another_writers_articles_from_its_next_question(
    seeded: Byline, embedder: Embedder, tmp_path: Path
) -> None:
    reader = seeded
    assert reader.ask("What happened in Magnitogorsk?").citations  # warm: its index is loaded
    writer = Byline(reader.settings, embedder=embedder)
    assert writer.ingest([str(write_jsonl(tmp_path / "new.jsonl", NEW))]).added == 3

    assert "https://gamma.example/lighthouse" in cited(reader, "How long was Marit Solheim lighthouse keeper?")
    # A filtered search and reading stored vectors went through the ids the stale index lacked.
    july = SearchFilters(since=date(2019, 7, 1))
    assert "https://gamma.example/glacier" in cited(reader, "How much did the Brennvik glacier shrink?", filters=july)
    new_articles = {a for r in NEW for a in reader.catalog.resolve(r["url"])}
    new_chunks = {c for c in reader.catalog.chunk_ids(reader.store.collection_name) if c.split(":")[0] in new_articles}
    assert len(new_chunks) >= 3 and set(reader.store.vectors(sorted(new_chunks))) == new_chunks

    removed, _ = writer.forget(["https://gamma.example/lighthouse"])
    assert len(removed) == 1
    assert "https://gamma.example/lighthouse" not in cited(reader, "How long was Marit Solheim lighthouse keeper?")
    assert "https://gamma.example/ferry" in cited(reader, "Why was the Tromsnes night ferry cancelled?", filters=july)


def test_a_reader_reloads_only_after_a_write(seeded: Byline, embedder: Embedder, tmp_path: Path) -> None:
    reader = seeded
    reader.ask("What happened in Magnitogorsk?")
    view = reader.store.index._view
    reader.ask("Why did Jack Dorsey call Ilhan Omar?")
    assert reader.store.index._view is view  # nothing changed: the same loaded index
    Byline(reader.settings, embedder=embedder).ingest([str(write_jsonl(tmp_path / "new.jsonl", NEW[:1]))])
    reader.ask("Why did Jack Dorsey call Ilhan Omar?")
    assert reader.store.index._view is not view and view is not None and view.system is None  # old one let go


@on_both_catalogs
def test_a_writer_opened_earlier_keeps_what_another_wrote_meanwhile(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    first = Byline(settings, embedder=embedder)
    first.ingest([str(write_jsonl(tmp_path / "a.jsonl", NEW[:1]))])
    second = Byline(settings, embedder=embedder)
    second.ingest([str(write_jsonl(tmp_path / "b.jsonl", NEW[1:2]))])
    first.ingest([str(write_jsonl(tmp_path / "c.jsonl", NEW[2:]))])  # its index was older than the files

    fresh = Byline(settings, embedder=embedder)
    diagnosis = fresh.doctor()
    assert diagnosis.ok, diagnosis.to_dict()
    assert fresh.store.count() == len(fresh.catalog.chunk_ids(fresh.store.collection_name)) >= 3


@on_both_catalogs
def test_two_ingests_of_the_same_articles_at_once_add_each_once(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    records = [dict(r, url=f"{r['url']}-{i}", title=f"{r['title']} {i}") for i in range(8) for r in NEW]
    path = write_jsonl(tmp_path / "same.jsonl", records)
    reports = []

    def run() -> None:
        reports.append(Byline(settings, embedder=embedder).ingest([str(path)]))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.added for r in reports) == len(records)
    assert sum(r.unchanged for r in reports) == len(records)
    assert Byline(settings, embedder=embedder).doctor().ok
