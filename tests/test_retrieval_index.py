"""Hybrid retrieval against the real model, real Chroma and each real catalog (SQLite FTS5, PostgreSQL): the
lexical index in step with the vectors across update, forget and an interrupted write; filters in both indexes;
the langchain interface."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from catalog_backends import BACKENDS, PreparedIndex, prepare_on_postgres, prepared_copy
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

import ingest.storage.postgres_articles
import ingest.storage.postgres_lexical
import ingest.storage.sqlite
from bot.app import Byline
from bot.retrieval.rerank import RerankError
from bot.settings import Settings, load_settings
from ingest.embedding import Embedder
from ingest.models import SearchFilters
from ingest.storage.catalog import LexicalQuery

ARTICLES = [
    {
        "url": "https://alpha.example/harbour",
        "source": "Alpha News",
        "date": "2019-03-02",
        "title": "Harbour bridge reopens",
        "text": "The Kvernhus harbour bridge reopened on Saturday after two years of repairs costing 40 million "
        "kroner. Ferries that replaced it will stop running next week.",
    },
    {
        "url": "https://beta.example/harbour",
        "source": "Beta Times",
        "date": "2019-06-20",
        "title": "Harbour bridge closes again",
        "text": "The Kvernhus harbour bridge closed again on Thursday when inspectors found cracks in a support. "
        "The council said ferries would return within days.",
    },
    {
        "url": "https://beta.example/orchestra",
        "source": "Beta Times",
        "date": "2019-01-15",
        "title": "Orchestra names new conductor",
        "text": "The city orchestra named Ilse Vandermeer as its principal conductor. She starts in the autumn "
        "season and replaces a conductor who led the orchestra for twenty years.",
    },
]


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def lexical(byline: Byline, *terms: str, filters: SearchFilters | None = None) -> list[str]:
    """Article ids of the lexical hits for some terms."""
    hits = byline.store.lexical_search(LexicalQuery(list(terms), 50, filters))
    rows = byline.catalog.chunk_rows(byline.store.collection_name, [chunk_id for chunk_id, _ in hits])
    return [rows[chunk_id].article_id for chunk_id, _ in hits]


def in_step(byline: Byline) -> bool:
    """Every chunk is in both indexes and nothing else is."""
    fetch = byline.catalog.fetch
    chunks = {row[0] for row in fetch("SELECT rowid FROM chunks")}
    lexical_rows = lexical_rowids(byline)
    chunk_ids = {row[0] for row in fetch("SELECT id FROM chunks")}
    vectors = byline.store.vector_ids()
    return chunks == lexical_rows and chunk_ids == vectors


@pytest.fixture(scope="module", params=BACKENDS)
def news_home(
    request: pytest.FixtureRequest, seeded_home: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> PreparedIndex:
    """The seed articles (so BM25 sees realistic term statistics) plus the three above, indexed once for the
    module on each catalog; tests get a copy."""
    folder = tmp_path_factory.mktemp("news")
    if request.param == "sqlite":
        prepared = PreparedIndex(folder / "home")
        shutil.copytree(seeded_home, prepared.home)
    else:
        prepared = prepare_on_postgres(request.getfixturevalue("postgres_server"), seeded_home, folder / "home")
    settings = Settings(home=prepared.home, store={"database_url": database_url_of(request, prepared)})
    instance = Byline(settings, embedder=embedder)
    report = instance.ingest([str(write_jsonl(folder / "news.jsonl", ARTICLES))])
    assert report.added == 3 and not report.failed
    instance.catalog.close()
    return prepared


def database_url_of(request: pytest.FixtureRequest, prepared: PreparedIndex) -> str | None:
    if prepared.database is None:
        return None
    return str(request.getfixturevalue("postgres_server").url(prepared.database))


@pytest.fixture
def news(news_home: PreparedIndex, tmp_path: Path, request: pytest.FixtureRequest, embedder: Embedder) -> Byline:
    prepared_copy(news_home, tmp_path / "news-home", request)
    return Byline(load_settings(), embedder=embedder)


def postgres(byline: Byline) -> bool:
    return byline.settings.store.database_url is not None


def lexical_rowids(byline: Byline) -> set[int]:
    """Chunks (by rowid) in the catalog's lexical index."""
    if postgres(byline):
        return {row[0] for row in byline.catalog.fetch("SELECT DISTINCT chunk FROM lexical_postings")}
    return {row[0] for row in byline.catalog.fetch("SELECT rowid FROM chunks_fts")}


def test_lexical_index_follows_update_and_forget(news: Byline, tmp_path: Path) -> None:
    (orchestra,) = news.catalog.resolve("https://beta.example/orchestra")
    assert lexical(news, "vandermeer") == [orchestra] and in_step(news)

    changed = dict(ARTICLES[2], text=ARTICLES[2]["text"].replace("Ilse Vandermeer", "Tomasz Okonkwo"))
    report = news.ingest([str(write_jsonl(tmp_path / "update.jsonl", [changed]))])
    assert report.updated == 1
    assert lexical(news, "vandermeer") == [] and lexical(news, "okonkwo") == [orchestra] and in_step(news)

    removed, _ = news.forget(["https://beta.example/orchestra"])
    assert removed == [orchestra]
    assert lexical(news, "okonkwo") == [] and orchestra not in lexical(news, "orchestra") and in_step(news)


def test_lexical_hits_of_another_collection_never_crowd_out_this_ones(
    news: Byline, embedder: Embedder, tmp_path: Path
) -> None:
    """One catalog, two collections (another chunk size): BM25 ranks inside FTS5, which holds both."""
    other = Byline(
        news.settings.model_copy(update={"chunk": news.settings.chunk.model_copy(update={"max_tokens": 64})}),
        embedder=embedder,
    )
    assert other.store.collection_name != news.store.collection_name
    harbour = [
        {"title": f"Harbour harbour {n}", "text": f"Harbour bridge, harbour bridge, harbour bridge {n}."}
        for n in range(12)
    ]
    assert other.ingest([str(write_jsonl(tmp_path / "harbour.jsonl", harbour))]).added == 12
    alpha, beta = (
        news.catalog.resolve("https://alpha.example/harbour"),
        news.catalog.resolve("https://beta.example/harbour"),
    )
    hits = news.store.lexical_search(LexicalQuery(["harbour", "bridge"], 2))
    rows = news.catalog.chunk_rows(news.store.collection_name, [chunk_id for chunk_id, _ in hits])
    assert sorted(rows[chunk_id].article_id for chunk_id, _ in hits) == sorted(alpha + beta)


def test_common_words_are_left_out_of_bm25_in_a_large_index(
    news: Byline, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for backend in (ingest.storage.sqlite, ingest.storage.postgres_lexical):
        monkeypatch.setattr(backend, "COMMON_TERMS_FROM", 1)  # this small index counts as large
    catalog, collection = news.catalog, news.store.collection_name
    (orchestra,) = catalog.resolve("https://beta.example/orchestra")

    def articles(terms: list[str], share: float) -> set[str]:
        hits = catalog.lexical_search(collection, LexicalQuery(terms, 50, common_share=share))
        rows = catalog.chunk_rows(collection, [chunk_id for chunk_id, _ in hits])
        return {rows[chunk_id].article_id for chunk_id, _ in hits}

    # "harbour" is in several chunks, "vandermeer" in one: at a 1 % cap only the rare word is scored
    assert len(articles(["harbour", "vandermeer"], 1.0)) >= 3
    assert articles(["harbour", "vandermeer"], 0.01) == {orchestra}
    assert len(articles(["harbour", "bridge"], 0.01)) >= 2  # all common: every word is kept
    # a word found nowhere does not leave the common ones out: they are all there is to score
    assert len(articles(["harbour", "zzzxq"], 0.01)) >= 2
    if postgres(news):
        return  # it reads the chunk count with each search
    # the chunk count behind the cap follows writes from another connection (another process)
    before = catalog._count_chunks()  # type: ignore[attr-defined]
    writer = Byline(news.settings, embedder=embedder)
    extra = [{"title": "Vandermeer on tour", "text": "Ilse Vandermeer took the orchestra on tour to Vienna."}]
    writer.ingest([str(write_jsonl(tmp_path / "tour.jsonl", extra))])
    assert catalog._count_chunks() > before  # type: ignore[attr-defined]


def test_title_change_reaches_the_lexical_index(news: Byline, tmp_path: Path) -> None:
    renamed = dict(ARTICLES[2], title="Vienna-born conductor to lead orchestra")
    news.ingest([str(write_jsonl(tmp_path / "renamed.jsonl", [renamed]))])
    assert lexical(news, "vienna-born") == news.catalog.resolve("https://beta.example/orchestra")
    assert in_step(news)


def test_interrupted_catalog_switch_keeps_both_indexes_on_the_old_version(
    news: Byline, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = dict(ARTICLES[2], text=ARTICLES[2]["text"].replace("Ilse Vandermeer", "Tomasz Okonkwo"))
    # where each catalog writes an article, inside the switch: after the old chunks were deleted, before the new
    owner, name = (
        (ingest.storage.postgres_articles, "_upsert_articles") if postgres(news) else (news.catalog, "_upsert_article")
    )

    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(owner, name, crash)
        with pytest.raises(KeyboardInterrupt):
            news.ingest([str(write_jsonl(tmp_path / "update.jsonl", [changed]))])
    (orchestra,) = news.catalog.resolve("https://beta.example/orchestra")
    assert lexical(news, "vandermeer") == [orchestra] and lexical(news, "okonkwo") == []
    assert "Vandermeer" in news.retriever.search("Who is the new conductor of the orchestra?", k=1)[0].text

    reopened = Byline(news.settings, embedder=embedder)
    assert in_step(reopened)  # the next open swept the vectors of the version that never landed
    assert reopened.ingest([str(write_jsonl(tmp_path / "update.jsonl", [changed]))]).updated == 1
    assert lexical(reopened, "okonkwo") == [orchestra] and in_step(reopened)


def test_migration_backfills_an_existing_index(
    byline: Byline, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = [step for step in ingest.storage.sqlite.CORE_MIGRATIONS if step.name != "004_chunks_fts"]
    monkeypatch.setattr(ingest.storage.sqlite, "CORE_MIGRATIONS", before)
    byline.ingest([str(write_jsonl(tmp_path / "news.jsonl", ARTICLES))])
    byline.catalog.close()
    monkeypatch.undo()

    reopened = Byline(byline.settings, embedder=embedder)
    assert lexical(reopened, "kvernhus") and in_step(reopened)


def test_hybrid_scores_and_exact_names(news: Byline) -> None:
    top = news.retriever.search("Who is Ilse Vandermeer?", k=3)
    assert top[0].title == "Orchestra names new conductor"
    assert top[0].lexical_score is not None and top[0].dense_score is not None
    assert [p.score for p in top] == sorted((p.score for p in top), reverse=True)


def test_passages_found_only_by_bm25_get_a_dense_score(seeded: Byline) -> None:
    question = "Which exoplanet has water vapour in its atmosphere?"
    seeded.settings.retrieval.candidates = 1
    passages = seeded.retriever.search(question, k=4)  # 4 candidates from each index
    vector = seeded.embedder.embed_query(question)
    dense_top = {chunk_id for chunk_id, _ in seeded.store.dense_search(vector, 4)}
    assert any(p.chunk_id not in dense_top for p in passages)
    everything = dict(seeded.store.dense_search(vector, 1000))
    for passage in passages:
        assert passage.dense_score == pytest.approx(everything[passage.chunk_id], abs=1e-4)


def test_article_chunks_are_every_current_chunk_in_text_order(news: Byline, tmp_path: Path) -> None:
    (orchestra,) = news.catalog.resolve("https://beta.example/orchestra")
    counts = dict(news.catalog.fetch("SELECT article_id, count(*) FROM chunks GROUP BY article_id"))
    longest = max(counts, key=lambda a: counts[a])
    rows = news.store.article_chunks([longest, orchestra])
    assert [r.article_id for r in rows] == [longest] * counts[longest] + [orchestra] * counts[orchestra]
    assert counts[longest] >= 3
    stored = news.catalog.article(longest)
    assert stored is not None
    mine = [r for r in rows if r.article_id == longest]
    assert [r.start for r in mine] == sorted(r.start for r in mine)
    assert all(stored.text[r.start : r.end] == r.text for r in mine)

    changed = dict(ARTICLES[2], text=ARTICLES[2]["text"].replace("Ilse Vandermeer", "Tomasz Okonkwo"))
    assert news.ingest([str(write_jsonl(tmp_path / "update.jsonl", [changed]))]).updated == 1
    (row,) = news.store.article_chunks([orchestra])  # the new version's chunk only
    assert "Okonkwo" in row.text and news.store.article_chunks(["no-such-article"]) == []


def test_leading_passages_are_the_rest_of_the_top_articles(seeded: Byline) -> None:
    question = "Who won the 2019 Nobel Prize in Physics?"
    (top,) = seeded.retriever.search(question, k=1)
    more = seeded.retriever.leading_passages(question, [top], 1)
    every = {r.chunk_id for r in seeded.store.article_chunks([top.article_id])}
    assert {p.chunk_id for p in more} == every - {top.chunk_id} != set()
    assert all(p.article_id == top.article_id and p.score == 0.0 and p.dense_score is not None for p in more)
    passages = seeded.retriever.search(question, k=4)
    leading = list(dict.fromkeys(p.article_id for p in passages))[:2]
    both = seeded.retriever.leading_passages(question, passages, 2)
    assert {p.article_id for p in both} <= set(leading)
    assert not {p.chunk_id for p in both} & {p.chunk_id for p in passages}
    assert seeded.retriever.leading_passages(question, passages, 0) == []


def test_free_text_is_never_fts_syntax(news: Byline) -> None:
    for query in ['"unbalanced', "NEAR(bridge harbour)", "title:bridge OR -x*", "^AND", "'; DROP TABLE chunks; --"]:
        news.retriever.search(query)  # no sqlite3.OperationalError
    assert in_step(news)


def test_source_and_date_filters_apply_to_both_indexes(news: Byline) -> None:
    question = "When did the Kvernhus harbour bridge reopen after repairs?"
    alpha = news.retriever.search(question, filters=SearchFilters(sources=(" alpha NEWS",)))
    assert alpha and {p.source for p in alpha} == {"Alpha News"}
    summer = news.retriever.search(question, filters=SearchFilters(since=date(2019, 6, 20), until=date(2019, 6, 20)))
    assert summer and {p.title for p in summer} == {"Harbour bridge closes again"}
    assert news.retriever.search(question, filters=SearchFilters(until=date(2018, 12, 31))) == []
    winter = SearchFilters(sources=("Beta Times",), until=date(2019, 3, 1))
    assert lexical(news, "kvernhus", "orchestra", filters=winter) == news.catalog.resolve(
        "https://beta.example/orchestra"
    )


def test_recency_preference_only_when_enabled_and_asked(news: Byline, embedder: Embedder) -> None:
    question = "latest news on the Kvernhus harbour bridge reopening"
    assert news.retriever.search(question, k=1)[0].title == "Harbour bridge reopens"
    recent = Byline(load_settings(retrieval={"recency": True, "recency_half_life_days": 7}), embedder=embedder)
    assert recent.retriever.search(question, k=1)[0].title == "Harbour bridge closes again"
    assert recent.retriever.search("Kvernhus harbour bridge reopening", k=1)[0].title == "Harbour bridge reopens"


def test_langchain_interface(news: Byline) -> None:
    docs = news.retriever.invoke("Who will conduct the city orchestra?")
    assert docs and all(isinstance(d, Document) for d in docs)
    assert docs[0].metadata["title"] == "Orchestra names new conductor" and docs[0].metadata["source"] == "Beta Times"
    assert len(docs) <= news.settings.retrieval.k

    def urls(found: list[Document]) -> list[str]:
        return [d.metadata["url"] for d in found]

    chain = news.retriever | RunnableLambda(urls)
    assert chain.invoke("harbour bridge cracks")[0] == "https://beta.example/harbour"
    assert news.retriever.invoke("Kvernhus", k=1)[0].page_content.startswith("The Kvernhus harbour bridge")


def test_missing_rerank_model_is_a_clear_error(news: Byline, embedder: Embedder, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-cross-encoder"
    configured = Byline(load_settings(retrieval={"rerank_model": str(missing)}), embedder=embedder)
    with pytest.raises(RerankError, match="no-such-cross-encoder"):
        configured.retriever.search("harbour bridge")
