"""Server mode: Byline against a real `chroma run` on 127.0.0.1, from one process and from two at once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from chroma_server import CHROMA, running_chroma, start_chroma, stop
from conftest import SEED_ARTICLE, SEED_JSONL, free_port

from bot.app import Byline
from bot.settings import Settings, load_settings
from ingest.embedding import Embedder
from ingest.models import SearchFilters

pytestmark = [pytest.mark.slow, pytest.mark.network]

BYLINE = Path(sys.executable).with_name("byline")


@pytest.fixture
def chroma_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with running_chroma(tmp_path / "chroma-server") as url:
        monkeypatch.setenv("BYLINE_STORE_CHROMA_URL", url)
        yield url


def byline_at(home: Path, embedder: Embedder) -> Byline:
    return Byline(load_settings(home=home), embedder=embedder)


def server_ids(url: str, collection: str) -> set[str]:
    import chromadb

    port = int(url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(host="127.0.0.1", port=port)
    return set(client.get_collection(collection).get(include=[])["ids"])


def catalog_ids(byline: Byline) -> set[str]:
    return {row[0] for row in byline.catalog.fetch("SELECT id FROM chunks")}


def test_ingest_ask_update_forget_against_a_server(
    chroma_url: str, settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    byline = byline_at(settings.home, embedder)
    assert byline.settings.store.chroma_url == chroma_url
    story = tmp_path / "rates.md"
    head = "---\nurl: https://news.example/rates\n---\nBank holds rates\n\n"
    story.write_text(head + "The central bank held its main rate at 4.5 percent on Thursday.")
    report = byline.ingest([str(SEED_ARTICLE), str(story)])
    assert report.added == 2 and not report.failed
    collection = byline.store.collection_name
    assert server_ids(chroma_url, collection) == catalog_ids(byline)
    assert not (settings.home / "chroma").exists()  # nothing went to an embedded store

    assert "4.5 percent" in byline.ask("What rate did the central bank hold?").text

    story.write_text(head + "The central bank cut its main rate to 4.25 percent on Thursday.")
    assert byline.ingest([str(story)]).updated == 1
    answer = byline.ask("What rate did the central bank set?")
    assert "4.25 percent" in answer.text and "4.5 percent" not in answer.text
    assert server_ids(chroma_url, collection) == catalog_ids(byline)

    removed, missing = byline.forget(["https://news.example/rates"])
    assert len(removed) == 1 and not missing
    assert server_ids(chroma_url, collection) == catalog_ids(byline)
    assert all("central bank" not in p.text for p in byline.retriever.search("central bank rate"))


def test_another_machine_reads_chunks_from_the_server(chroma_url: str, embedder: Embedder, tmp_path: Path) -> None:
    writer = byline_at(tmp_path / "machine-a", embedder)
    writer.ingest([str(SEED_ARTICLE)])
    reader = byline_at(tmp_path / "machine-b", embedder)  # its own, empty catalog; the same server
    hits = reader.store.dense_search(embedder.embed_query("Why did Jack Dorsey call Ilhan Omar?"), 5)
    assert hits
    rows = reader.store.chunk_rows([chunk_id for chunk_id, _ in hits])
    local = writer.catalog.chunk_rows(writer.store.collection_name, [chunk_id for chunk_id, _ in hits])
    assert set(rows) == set(local)
    for chunk_id, row in rows.items():
        mine = local[chunk_id]
        assert (row.text, row.start, row.end, row.title, row.url) == (
            mine.text,
            mine.start,
            mine.end,
            mine.title,
            mine.url,
        )
        assert row.path is None  # file paths mean nothing on another machine
        stored = writer.catalog.article(row.article_id)
        article = stored.text if stored else ""
        assert article[row.start : row.end] == row.text
    # Every chunk of an article only the other machine ingested, as the reader of a leading article wants them.
    article_id = next(iter(rows.values())).article_id
    theirs = reader.store.article_chunks([article_id])
    ours = writer.catalog.article_chunks(writer.store.collection_name, [article_id])
    assert [(r.chunk_id, r.text, r.start) for r in theirs] == [(r.chunk_id, r.text, r.start) for r in ours]


def test_an_ingester_and_an_asker_share_one_server(chroma_url: str, tmp_path: Path) -> None:
    """Two processes at once on one machine (one home): a bulk ingest and a bot answering meanwhile."""
    env = {**os.environ, "BYLINE_STORE_CHROMA_URL": chroma_url}
    ingester = subprocess.Popen(
        [str(BYLINE), "ingest", "--json", str(SEED_JSONL)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    outcomes: list[tuple[int, str]] = []
    try:
        while ingester.poll() is None and len(outcomes) < 3:
            asked = subprocess.run(
                [str(BYLINE), "ask", "--json", "What happened in Magnitogorsk?"],
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            outcomes.append((asked.returncode, asked.stderr))
        out, err = ingester.communicate(timeout=600)
    finally:
        if ingester.poll() is None:
            ingester.kill()
    assert ingester.returncode == 0, err.decode()
    assert json.loads(out)["added"] == 37
    for code, stderr in outcomes:  # asked mid-ingest: an answer, or a plain "nothing yet", never a crash
        assert code == 0 or "no articles yet" in stderr, stderr
        assert "Traceback" not in stderr
    asked = subprocess.run(
        [str(BYLINE), "ask", "--json", "What happened in Magnitogorsk?"], env=env, capture_output=True, text=True
    )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert not answer["refused"] and "Magnitogorsk" in json.dumps(answer["citations"])


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "BYLINE_STORE_CHROMA_URL": url}
    asked = subprocess.run([str(BYLINE), "ask", "Anything?"], env=env, capture_output=True, text=True, timeout=120)
    assert asked.returncode == 1
    assert asked.stderr.startswith("error: ") and url in asked.stderr and "Traceback" not in asked.stderr


def test_a_warm_reader_sees_what_another_process_ingests_through_the_server(
    chroma_url: str, settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    reader = byline_at(settings.home, embedder)
    reader.ingest([str(SEED_ARTICLE)])
    assert reader.ask("Why did Jack Dorsey call Ilhan Omar?").citations  # warm
    news = tmp_path / "news.jsonl"
    news.write_text(
        json.dumps(
            {
                "url": "https://gamma.example/glacier",
                "date": "2019-07-05",
                "title": "Glacier shrinks by record",
                "text": "The Brennvik glacier lost 62 metres of length this year, the largest retreat measured.",
            }
        )
        + "\n"
    )
    env = {**os.environ, "BYLINE_STORE_CHROMA_URL": chroma_url}
    done = subprocess.run([str(BYLINE), "ingest", str(news)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    july = SearchFilters(since=date(2019, 7, 1))
    answer = reader.ask("How much did the Brennvik glacier shrink?", filters=july)
    assert [c.url for c in answer.citations] == ["https://gamma.example/glacier"]


def test_forget_through_a_server_leaves_the_text_only_in_the_servers_free_pages(
    tmp_path: Path, settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guarantee in server mode: nothing in the home; in the server's live tables and log, nothing; its
    database file keeps the text in free pages until the operator runs `chroma vacuum` on it."""
    data = tmp_path / "chroma-server"
    server, url = start_chroma(data)
    monkeypatch.setenv("BYLINE_STORE_CHROMA_URL", url)
    sentence = "The amethyst tortoise recited Portuguese sonnets to the harbour seals at dawn."
    story = tmp_path / "story.md"
    story.write_text(f"Tortoise poetry\n\nA keeper reported an unusual morning. {sentence} Visitors applauded.\n")
    try:
        byline = byline_at(settings.home, embedder)
        byline.ingest([str(story), str(SEED_ARTICLE)])
        assert byline.forget([str(story)])[0]
        assert not holding(settings.home, sentence)
        database = sqlite3.connect(data / "chroma.sqlite3")
        live = database.execute(
            """SELECT (SELECT count(*) FROM embeddings_queue WHERE metadata LIKE '%amethyst%')
                    + (SELECT count(*) FROM embedding_metadata WHERE string_value LIKE '%amethyst%')"""
        ).fetchone()[0]
        database.close()
        assert live == 0
    finally:
        stop(server)
    vacuum = subprocess.run(
        [str(CHROMA), "vacuum", "--path", str(data), "--force"], capture_output=True, text=True, timeout=120
    )
    assert vacuum.returncode == 0, vacuum.stderr
    assert not holding(data, sentence)


def holding(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]
