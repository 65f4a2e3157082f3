"""BM25 in a real PostgreSQL server (the PostgreSQL catalog's lexical index) against SQLite FTS5 on the same
chunks: equal scores, and the index kept in step by triggers through updates, deletes, title changes and
rollbacks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_server import PostgresServer

import ingest.storage.sqlite
from bot.retrieval.lexical import query_terms
from ingest.models import Article, Chunk, SearchFilters
from ingest.storage import postgres_lexical
from ingest.storage.catalog import LexicalQuery, Migration, StoredVector
from ingest.storage.postgres import PostgresCatalog
from ingest.storage.postgres_articles import write_articles
from ingest.storage.postgres_schema import CORE_MIGRATIONS
from ingest.storage.sqlite import SQLiteCatalog

pytestmark = [pytest.mark.slow, pytest.mark.network]

COLLECTION = "byline-test"

Written = list[tuple[Article, list[Chunk]]]


def article(
    article_id: str,
    title: str,
    paragraphs: Sequence[str],
    source: str | None = None,
    published: date | None = None,
) -> tuple[Article, list[Chunk]]:
    """An article whose chunks are its paragraphs."""
    text = "\n\n".join(paragraphs)
    when = datetime(published.year, published.month, published.day, 12, tzinfo=UTC) if published else None
    item = Article(id=article_id, title=title, text=text, source=source, published_at=when)
    chunks, start = [], 0
    for position, paragraph in enumerate(paragraphs):
        chunks.append(
            Chunk(article_id, position, start, start + len(paragraph), paragraph, title, 10, item.content_hash)
        )
        start += len(paragraph) + 2
    return item, chunks


CORPUS: Written = [
    article(
        "planet",
        "Water found on exoplanet K2-18b",
        [
            "Astronomers found water vapour in the atmosphere of K2-18b, a planet 110 light years away.",
            "The planet K2-18b orbits a red dwarf; its year lasts 33 days. Water, water everywhere.",
        ],
        "Space Daily",
        date(2019, 9, 11),
    ),
    article(
        "bridge",
        "Harbour bridge reopens",
        [
            "The Kvernhus harbour bridge reopened on Saturday after two years of repairs costing 40 million kroner.",
            "Ferries that replaced the bridge will stop running next week, the harbour authority said.",
        ],
        "Alpha News",
        date(2019, 3, 2),
    ),
    article(
        "rates",
        "Central bank holds rates",
        ["The central bank held its main rate at 4.5 percent; inflation stayed near 3.5 percent in March."],
        "Beta Times",
        date(2019, 3, 21),
    ),
    article(
        "sprint",
        "Müller wins the sprint",
        ["MÜLLER won the 3.5 km sprint — a naïve rival’s late charge fell short — on Sunday in Zürich."],
        "Beta Times",
        date(2019, 6, 2),
    ),
    article(
        "covid",
        "COVID-19 cases rise",
        [
            "COVID-19 cases rose in the U.S. state of Ohio; officials said the U.S. total passed 5,000.",
            "Health officials in Ohio urged residents to wear masks. Cases of COVID-19 rose in 12 counties.",
        ],
        "Gamma Wire",
        date(2020, 4, 1),
    ),
    article(
        "flood",
        "Flooding in Ohio",  # a phrase never runs from the title into the text: no "Ohio-State" here
        ["State officials closed roads near the river as the flooding spread."],
        "Gamma Wire",
        date(2020, 4, 2),
    ),
    article(
        "orchestra",
        "Orchestra names new conductor",
        [
            "The city orchestra named Ilse Vandermeer as its principal conductor; she starts in the autumn season.",
            "Vandermeer replaces a conductor who led the orchestra for twenty years. O'Brien, the manager, agreed.",
        ],
        "Alpha News",
        date(2019, 1, 15),
    ),
]

QUERIES = [
    "Where was water found on K2-18b?",
    "harbour bridge repairs",
    "What rate did the central bank hold?",
    "3.5 percent",
    "Muller sprint Zurich",
    "naive rival",
    "COVID-19 cases in the U.S.",
    "Who is the orchestra's new conductor?",
    "O'Brien",
    "water water",
    "planet orbits red dwarf",
    "Ohio-State flooding",
    "K2-18b-orbits and COVID-19-cases",  # phrases of three tokens, in the text and in a title
    "harbours and the harbour",  # two terms, one lexeme: scored twice, as FTS5 does
    "nothing matches this",
]


@pytest.fixture
def pg_catalog(postgres_url: str) -> Iterator[PostgresCatalog]:
    catalog = PostgresCatalog(postgres_url)
    yield catalog
    catalog.close()


@pytest.fixture
def pg(pg_catalog: PostgresCatalog) -> Iterator[psycopg.Connection]:
    """A connection of its own to the catalog's database, for checks and edits in SQL."""
    with psycopg.connect(pg_catalog.url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[SQLiteCatalog]:
    catalog = SQLiteCatalog(tmp_path / "catalog.sqlite")
    yield catalog
    catalog.close()


def write_both(catalog: SQLiteCatalog, pg: psycopg.Connection, written: Written, collection: str = COLLECTION) -> None:
    catalog.commit_articles(collection, written)
    with pg.transaction():
        write_articles(pg, collection, written)


def ranked(hits: list[tuple[str, float]]) -> list[tuple[float, str]]:
    return sorted(((round(score, 9), chunk_id) for chunk_id, score in hits), key=lambda hit: (-hit[0], hit[1]))


def pg_search(
    pg: psycopg.Connection, terms: Sequence[str], n: int = 50, collection: str = COLLECTION, **options: Any
) -> list[tuple[str, float]]:
    return postgres_lexical.lexical_search(pg, collection, LexicalQuery(list(terms), n, **options))


def fts5_search(catalog: SQLiteCatalog, terms: Sequence[str], n: int = 50, **options: Any) -> list[tuple[str, float]]:
    return catalog.lexical_search(COLLECTION, LexicalQuery(list(terms), n, **options))


def assert_same_bm25(catalog: SQLiteCatalog, pg: psycopg.Connection, terms: list[str], **options: Any) -> None:
    assert ranked(pg_search(pg, terms, **options)) == ranked(fts5_search(catalog, terms, **options)), terms


def assert_in_step(pg: psycopg.Connection, collection: str = COLLECTION) -> None:
    """Every derived lexical row equals what the current chunks and titles give, computed from scratch."""
    stale = pg.execute(
        """SELECT count(*) FROM chunks c JOIN articles a ON a.id = c.article_id
           WHERE c.lexemes <> setweight(byline_lexemes(a.title), 'A') || setweight(byline_lexemes(c.text), 'D')
              OR c.lexical_length <> byline_token_count(c.lexemes)"""
    ).fetchone()
    assert stale == (0,)
    expected = pg.execute(
        """SELECT t.lexeme, c.rowid, cardinality(array_positions(u.weights, 'A')),
                  cardinality(array_positions(u.weights, 'D')), byline_token_count(c.lexemes),
                  nullif(array(SELECT p FROM unnest(u.positions, u.weights) AS x (p, w) WHERE w = 'A'), '{}'),
                  array(SELECT p FROM unnest(u.positions, u.weights) AS x (p, w) WHERE w = 'D')
           FROM chunks c CROSS JOIN unnest(c.lexemes) u
           JOIN lexical_collections lc ON lc.name = c.collection
           JOIN lexical_terms t ON t.collection_id = lc.id AND t.lexeme = u.lexeme COLLATE "C"
           WHERE c.collection = %s ORDER BY 1, 2""",
        (collection,),
    ).fetchall()
    postings = pg.execute(
        """SELECT t.lexeme, p.chunk, p.title_hits, p.text_hits, p.length, p.title_positions, p.text_positions
           FROM lexical_postings p
           JOIN lexical_terms t ON t.id = p.term_id JOIN lexical_collections lc ON lc.id = t.collection_id
           WHERE lc.name = %s ORDER BY 1, 2""",
        (collection,),
    ).fetchall()
    assert postings == expected
    totals = pg.execute("SELECT chunks, tokens FROM lexical_collections WHERE name = %s", (collection,)).fetchone()
    recount = pg.execute(
        "SELECT count(*), coalesce(sum(byline_token_count(lexemes)), 0) FROM chunks WHERE collection = %s",
        (collection,),
    ).fetchone()
    assert totals == recount


def test_bm25_scores_equal_fts5_on_the_same_chunks(sqlite_catalog: SQLiteCatalog, pg: psycopg.Connection) -> None:
    write_both(sqlite_catalog, pg, CORPUS)
    for question in QUERIES:
        assert_same_bm25(sqlite_catalog, pg, query_terms(question))
        assert_same_bm25(sqlite_catalog, pg, query_terms(question), title_weight=2.5)
        assert_same_bm25(sqlite_catalog, pg, query_terms(question), title_weight=0.0)
    assert pg_search(pg, ["k2-18b"], 5)[0][0].startswith("planet:")
    assert {hit[0].split(":")[0] for hit in pg_search(pg, ["3.5"], 5)} == {
        "rates",
        "sprint",
    }
    assert pg_search(pg, ["4.5"], 5)[0][0].startswith("rates:")
    assert pg_search(pg, ["18b-k2"], 5) == []  # a phrase, in its order
    assert pg_search(pg, ["ohio-state"], 5) == []
    assert {hit[0].split(":")[0] for hit in pg_search(pg, ["covid-19-cases", "k2-18b-orbits"], 5)} == {
        "covid",
        "planet",
    }


def test_index_stays_in_step_through_updates_deletes_titles_and_rollbacks(
    sqlite_catalog: SQLiteCatalog, pg: psycopg.Connection
) -> None:
    write_both(sqlite_catalog, pg, CORPUS)
    assert_in_step(pg)

    # a new version of one article replaces its chunks (fewer of them)
    rates = article("rates", "Central bank cuts rates", ["The central bank cut its main rate to 4.25 percent."])
    write_both(sqlite_catalog, pg, [rates])
    assert_in_step(pg)
    assert pg_search(pg, ["inflation"], 5) == []
    assert_same_bm25(sqlite_catalog, pg, ["rate", "cut", "4.25"])

    # a title change alone re-indexes that article's chunks
    for db in (sqlite_catalog.conn, pg):
        db.execute("UPDATE articles SET title = 'Vienna-born conductor to lead orchestra' WHERE id = 'orchestra'")
    assert_in_step(pg)
    assert_same_bm25(sqlite_catalog, pg, ["vienna-born", "orchestra"])

    # a text edit in place
    for db in (sqlite_catalog.conn, pg):
        db.execute("UPDATE chunks SET text = 'Ferries keep running.' WHERE id LIKE 'bridge:%:1'")
    assert_in_step(pg)
    assert_same_bm25(sqlite_catalog, pg, ["ferries", "running", "authority"])

    # deleting an article cascades to its chunks and their postings
    for db in (sqlite_catalog.conn, pg):
        db.execute("DELETE FROM articles WHERE id = 'planet'")
    assert_in_step(pg)
    assert pg_search(pg, ["k2-18b", "water"], 5) == []
    for question in QUERIES:
        assert_same_bm25(sqlite_catalog, pg, query_terms(question))

    # a write that fails leaves nothing behind
    before = pg.execute("SELECT count(*) FROM lexical_postings").fetchone()
    with pytest.raises(psycopg.errors.UniqueViolation), pg.transaction():
        write_articles(pg, COLLECTION, [article("new", "Brand new", ["Something entirely new."])])
        pg.execute("INSERT INTO articles SELECT * FROM articles WHERE id = 'new'")  # fails
    assert pg.execute("SELECT count(*) FROM lexical_postings").fetchone() == before
    assert pg_search(pg, ["entirely"], 5) == []
    assert_in_step(pg)


def test_keeping_vectors_leaves_the_lexical_index_alone(pg_catalog: PostgresCatalog, pg: psycopg.Connection) -> None:
    pg_catalog.commit_articles(COLLECTION, CORPUS)
    postings = pg.execute("SELECT term_id, chunk, xmin::text FROM lexical_postings ORDER BY 1, 2").fetchall()
    chunk_ids = sorted(pg_catalog.chunk_ids(COLLECTION))
    pg_catalog.store_vectors(COLLECTION, [(c, StoredVector(b"\x00\x00\x80\x3f", "h")) for c in chunk_ids])
    assert pg_catalog.chunks_without_vectors(COLLECTION) == []
    # the same posting rows, not rewritten (their row versions unchanged), and totals as they were
    assert pg.execute("SELECT term_id, chunk, xmin::text FROM lexical_postings ORDER BY 1, 2").fetchall() == postings
    assert_in_step(pg)
    assert pg_catalog.lexical_gaps() == (len(chunk_ids), len(chunk_ids), 0) and pg_catalog.integrity_problems() == []

    # a text edit in the same statement as a vector is still re-indexed
    pg.execute("UPDATE chunks SET text = 'Ferries keep running.', vector = NULL WHERE id LIKE 'bridge:%:1'")
    assert_in_step(pg)
    assert pg_search(pg, ["ferries"], 5)[0][0].startswith("bridge:")


def test_superseded_versions_and_other_collections_are_not_returned(
    pg_catalog: PostgresCatalog, pg: psycopg.Connection
) -> None:
    pg_catalog.commit_articles(COLLECTION, CORPUS)
    # another collection (another chunking) with harbour-heavy chunks of its own
    other = [article("moorings", "Harbour moorings", ["Harbour harbour harbour bridge, moored ferries."])]
    pg_catalog.commit_articles("other", other)
    assert_in_step(pg, "other")
    ids = [chunk_id for chunk_id, _ in pg_search(pg, ["harbour", "moored"], 50)]
    assert ids and all(chunk_id.startswith("bridge:") for chunk_id in ids)
    assert pg_search(pg, ["moored"], 5) == []
    assert pg_search(pg, ["moored"], 5, collection="other")[0][0].startswith("moorings:")
    # this collection's vectors still hold an older version of "bridge": its chunks are not current
    pg.execute("UPDATE indexed SET hash = 'older' WHERE collection = %s AND article_id = 'bridge'", (COLLECTION,))
    assert pg_search(pg, ["harbour", "bridge"], 1) == []
    assert pg_search(pg, ["harbour-bridge", "bridge"], 1) == []
    # the superseded rows rank higher, yet the next current one comes
    ((best, _),) = pg_search(pg, ["harbour", "ferries", "officials"], 1)
    assert best.split(":")[0] in {"covid", "flood"}


def test_source_and_date_filters(sqlite_catalog: SQLiteCatalog, pg: psycopg.Connection) -> None:
    write_both(sqlite_catalog, pg, CORPUS)
    terms = ["officials", "bridge", "conductor", "percent", "water", "covid-19", "harbour-bridge"]
    cases = [
        SearchFilters(sources=(" beta TIMES",)),
        SearchFilters(sources=("Alpha News", "Gamma Wire")),
        SearchFilters(since=date(2019, 3, 1), until=date(2019, 3, 31)),
        SearchFilters(since=date(2020, 1, 1)),
        SearchFilters(sources=("Alpha News",), until=date(2019, 2, 1)),
    ]
    for filters in cases:
        fts5 = fts5_search(sqlite_catalog, terms, 50, filters=filters)
        assert fts5
        assert ranked(pg_search(pg, terms, 50, filters=filters)) == ranked(fts5)


def test_common_terms_are_left_out_as_in_fts5(
    sqlite_catalog: SQLiteCatalog, pg: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.storage.sqlite, "COMMON_TERMS_FROM", 1)  # this small index counts as large
    monkeypatch.setattr(postgres_lexical, "COMMON_TERMS_FROM", 1)
    write_both(sqlite_catalog, pg, CORPUS)
    for terms, share in [
        (["the", "vandermeer"], 0.5),  # "the" is in most chunks: only the rare word is scored
        (["the", "in"], 0.1),  # all common: every word is kept
        (["covid-19", "ohio", "the"], 0.2),  # a phrase counts as rare
        (["the", "u.s"], 0.05),
        (["the", "officials-said"], 0.05),  # all common: the phrase's own count, not its first word's
        (["the", "u.s"], 0.1),  # the common word left out for a rare phrase
        (["u.s", "kvernhus", "covid-19"], 0.1),  # a common phrase left out beside rare terms
    ]:
        assert_same_bm25(sqlite_catalog, pg, terms, common_share=share)
    hits = pg_search(pg, ["the", "vandermeer"], 50, common_share=0.5)
    assert {chunk_id.split(":")[0] for chunk_id, _ in hits} == {"orchestra"}


def test_user_text_is_never_query_syntax(sqlite_catalog: SQLiteCatalog, pg: psycopg.Connection) -> None:
    write_both(sqlite_catalog, pg, CORPUS)
    for text in ["'", "a & b | !c", "water:*", "k2 <-> 18b", "<2>", "\\", "bridge' OR 'x", "(harbour", "--", "%s"]:
        pg_search(pg, [text], 5)  # no syntax error
        pg_search(pg, query_terms(text), 5)
    assert [c.split(":")[0] for c, _ in pg_search(pg, ["water:*"], 5)] == ["planet"] * 2
    assert pg_search(pg, ["wat:*"], 5) == []  # no prefix search either


def test_tokens_do_not_depend_on_the_database_locale(postgres_server: PostgresServer, pg: psycopg.Connection) -> None:
    text = "MÜLLER’s naïve e-mail to O'Brien — at 3.5% (U.S.) «Zürich»: k2-18b/COVID-19 …done"
    name = "lexical_c_locale"
    postgres_server.drop_database(name)
    with postgres_server.admin() as admin:
        admin.execute(f"CREATE DATABASE {name} OWNER {postgres_server.user} LOCALE 'C' TEMPLATE template0")
    try:
        PostgresCatalog(postgres_server.url(name)).close()
        with psycopg.connect(postgres_server.url(name), autocommit=True) as c_locale:
            assert c_locale.execute("SELECT current_setting('lc_ctype')").fetchone() == ("C",)
            assert (
                c_locale.execute("SELECT byline_lexemes(%s)::text", (text,)).fetchone()
                == pg.execute("SELECT byline_lexemes(%s)::text", (text,)).fetchone()
            )
    finally:
        postgres_server.drop_database(name)
    (lexemes,) = pg.execute("SELECT byline_lexemes(%s)::text", (text,)).fetchone() or ("",)
    for token in ("'muller'", "'naiv'", "'brien'", "'zurich'", "'k2'", "'18b'", "'covid'", "'19'", "'done'"):
        assert token in lexemes


def test_migrations_apply_once_when_processes_start_together(postgres_url: str) -> None:
    feature = Migration("900_feature", postgres="CREATE TABLE feature_state (key TEXT PRIMARY KEY)")
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            catalog = PostgresCatalog(postgres_url)  # applies the core migrations
            applied.append(catalog.apply_migrations([feature]))
            catalog.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(applied) == [[], [], [], ["900_feature"]]
    with psycopg.connect(postgres_url) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY name")]
    assert names == sorted([m.name for m in CORE_MIGRATIONS] + ["900_feature"])
