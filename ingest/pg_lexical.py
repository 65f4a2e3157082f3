"""BM25 in PostgreSQL with the semantics of the SQLite catalog's FTS5 index (a prototype for the PG catalog).

What FTS5's `bm25(chunks_fts, title_weight, 1.0)` computes, computed here in plain SQL (no extension does BM25
from Debian's packages or PyPI; `ts_rank` is not BM25):

- a row per chunk with two columns, its article's title and its text; N = rows, avgdl = all tokens / N, and a
  row's length D counts the tokens of both columns;
- per query term (a phrase of one or more tokens) idf = ln((N - n + 0.5) / (n + 0.5)), floored at 1e-6, where n
  is the number of rows the phrase occurs in; f = title hits * title_weight + text hits;
- score = sum over terms of idf * f * (k1 + 1) / (f + k1 * (1 - b + b * D / avgdl)), k1 = 1.2, b = 0.75.

N, n and avgdl are per collection (FTS5's are over its whole table, every collection's chunks).

Tokens as FTS5's `porter unicode61 remove_diacritics 2` makes them: runs of letters and digits, lower-cased,
accents removed (`unaccent`), every word kept, Porter-stemmed by PostgreSQL's snowball `porter`. That is the
original Porter algorithm; FTS5's has two later rules (-bli to -ble, -logi to -log) and leaves words under three
letters alone, so a few words stem differently ("assembly", "biology", "us", "5S").

Stored, and kept in step by triggers inside the transaction that changes chunks or titles:
- `chunks.lexemes`: the chunk's tsvector, title lexemes weighted A and text lexemes D, positions kept for
  phrases; set by a BEFORE row trigger;
- `lexical_postings`: one row per (lexeme of a collection, chunk) with its title and text hits and the chunk's
  length, all in the primary key's index: the inverted index BM25 reads; and its positions per column, for
  phrases. Scoring from the tsvectors instead (a GIN index to find chunks, `unnest` for term frequencies) pays a
  decompression per matching chunk, too slow for words found in thousands of chunks, and so did checking
  phrases in them;
- `lexical_terms`: lexeme ids per collection, only ever added to; how many chunks hold a lexeme is counted in its
  postings at query time, so writers never rewrite shared rows;
- `lexical_collections`: chunks and tokens per collection.
Postings and totals change once per statement (transition tables): write chunks in multi-row statements, as
`write_articles` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.models import SearchFilters, source_key
from ingest.models import Article, Chunk

if TYPE_CHECKING:
    from psycopg import Connection

K1 = 1.2
B = 0.75
# FTS5 floors the IDF of a phrase found in more than half the rows at this, so it still counts a little.
MIN_IDF = 1e-6
# Below this many chunks every query term is scored (as in the SQLite catalog).
COMMON_TERMS_FROM = 10_000
# One advisory lock key for schema changes, so processes starting together apply each migration once.
MIGRATION_LOCK = 0x6279_6C69_6E65  # "byline"

# Characters the default text search parser would read as part of a special token (hyphenated words, signed
# numbers, decimals, hosts, URLs, paths, e-mail addresses, tags, entities) become spaces, so it yields plain runs of
# letters and digits as FTS5's unicode61 does. Other punctuation is already a separator to the parser in a UTF-8
# database; the common Unicode marks are replaced too, for databases whose LC_CTYPE is C. Chained replace() rather
# than one regexp over Unicode ranges: this runs in every chunk write, and PostgreSQL's regexps are slow.
_SEPARATORS = ".-/@:+<&\\’‘“”—–…\u00a0«»·"


def _spaced(expression: str) -> str:
    """SQL turning each separator in `expression` into a space (chained replace: a fast search per character)."""
    for char in _SEPARATORS:
        expression = f"replace({expression}, '{char}', ' ')"
    return expression


MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_articles_chunks",
        # The tables the lexical index hangs off, as in the SQLite catalog (plus `source_key`, the outlet as
        # filters compare it, written by the application: Python's casefold is not PostgreSQL's lower).
        """
        CREATE TABLE articles (
            id text PRIMARY KEY,
            title text NOT NULL,
            url text,
            path text,
            source text,
            source_key text NOT NULL DEFAULT '',
            author text,
            published_at text,
            published_ts double precision,
            hash text NOT NULL,
            text text NOT NULL,
            ingested_at text NOT NULL,
            updated_at text NOT NULL
        );
        CREATE INDEX articles_url ON articles (url);
        CREATE INDEX articles_source_key ON articles (source_key);
        CREATE INDEX articles_published ON articles (published_ts);
        CREATE TABLE chunks (
            rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            collection text NOT NULL,
            article_id text NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
            position integer NOT NULL,
            start_char integer NOT NULL,
            end_char integer NOT NULL,
            text text NOT NULL,
            token_count integer NOT NULL
        );
        CREATE INDEX chunks_article ON chunks (collection, article_id);
        CREATE TABLE indexed (
            collection text NOT NULL,
            article_id text NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
            hash text NOT NULL,
            PRIMARY KEY (collection, article_id)
        );
        """,
    ),
    (
        "002_lexical_bm25",
        f"""
        CREATE EXTENSION IF NOT EXISTS unaccent;
        CREATE TEXT SEARCH DICTIONARY byline_porter (TEMPLATE = snowball, Language = porter);
        CREATE TEXT SEARCH CONFIGURATION byline_lexical (PARSER = pg_catalog.default);
        ALTER TEXT SEARCH CONFIGURATION byline_lexical
            ADD MAPPING FOR asciiword, word, numword, asciihword, hword, numhword, hword_asciipart, hword_part,
                hword_numpart
            WITH unaccent, byline_porter;
        ALTER TEXT SEARCH CONFIGURATION byline_lexical ADD MAPPING FOR int, uint, float, sfloat, version WITH simple;

        CREATE FUNCTION byline_lexemes(body text) RETURNS tsvector
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
            RETURN to_tsvector('byline_lexical'::regconfig, {_spaced("body")});
        CREATE FUNCTION byline_token_count(lexemes tsvector) RETURNS integer
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
            RETURN (SELECT coalesce(sum(cardinality(positions)), 0) FROM unnest(lexemes));

        ALTER TABLE chunks ADD COLUMN lexemes tsvector NOT NULL DEFAULT '';
        CREATE TABLE lexical_collections (
            id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL UNIQUE,
            chunks bigint NOT NULL DEFAULT 0,
            tokens bigint NOT NULL DEFAULT 0
        );
        -- Lexemes of a collection by number (the postings' keys). Rows are only ever added: how many chunks hold a
        -- lexeme is counted from the postings when a query needs it, so writers never rewrite shared rows.
        CREATE TABLE lexical_terms (
            id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            collection_id integer NOT NULL REFERENCES lexical_collections (id),
            lexeme text COLLATE "C" NOT NULL,
            UNIQUE (collection_id, lexeme)
        );
        -- The inverted index: integer keys, and everything single-word BM25 needs in the index itself. The
        -- positions (in the heap) are only read for phrases: title positions come first in the chunk's tsvector,
        -- so a lexeme's positions split at its title hits.
        CREATE TABLE lexical_postings (
            term_id integer NOT NULL,
            chunk bigint NOT NULL,
            title_hits smallint NOT NULL,
            text_hits smallint NOT NULL,
            length integer NOT NULL,
            title_positions smallint[],
            text_positions smallint[] NOT NULL,
            PRIMARY KEY (term_id, chunk) INCLUDE (title_hits, text_hits, length)
        );

        CREATE FUNCTION lexical_collection_ids(names text[]) RETURNS integer[]
            LANGUAGE sql STABLE
            RETURN (SELECT array_agg(lc.id ORDER BY n.i) FROM unnest(names) WITH ORDINALITY AS n (name, i)
                    JOIN lexical_collections lc ON lc.name = n.name);
        -- Take chunks out of / into the lexical index, given their (collection, rowid, lexemes). Row estimates of
        -- unnested arrays are guesses, so: no JIT (compiling for a guessed cost took longer than the work), and
        -- terms and postings are found by key, one index probe each (allowed a hash join, the planner read the
        -- whole table instead, at a cost growing with the index or the vocabulary).
        CREATE FUNCTION lexical_remove(collections text[], rowids bigint[], vectors tsvector[]) RETURNS void
            LANGUAGE plpgsql SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
            DECLARE
                collection_ids integer[] := lexical_collection_ids(collections);
                term_ids integer[];
                chunks bigint[];
            BEGIN
                SELECT array_agg(t.id), array_agg(g.rowid) INTO term_ids, chunks
                FROM unnest(collection_ids, rowids, vectors) AS g (collection_id, rowid, lexemes)
                CROSS JOIN unnest(g.lexemes) u
                JOIN lexical_terms t ON t.collection_id = g.collection_id AND t.lexeme = u.lexeme COLLATE "C";
                DELETE FROM lexical_postings p USING unnest(term_ids, chunks) AS k (term_id, chunk)
                WHERE p.term_id = k.term_id AND p.chunk = k.chunk;
                UPDATE lexical_collections lc SET chunks = lc.chunks - s.n, tokens = lc.tokens - s.tokens
                FROM (SELECT g.collection, count(*) AS n, sum(byline_token_count(g.lexemes)) AS tokens
                      FROM unnest(collections, vectors) AS g (collection, lexemes) GROUP BY 1) s
                WHERE lc.name = s.collection;
            END $$;
        CREATE FUNCTION lexical_add(collections text[], rowids bigint[], vectors tsvector[]) RETURNS void
            LANGUAGE plpgsql SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
            DECLARE
                collection_ids integer[];
            BEGIN
                INSERT INTO lexical_collections (name)
                    SELECT DISTINCT c FROM unnest(collections) c ORDER BY 1 ON CONFLICT (name) DO NOTHING;
                collection_ids := lexical_collection_ids(collections);
                INSERT INTO lexical_terms (collection_id, lexeme)
                    SELECT DISTINCT g.collection_id, u.lexeme COLLATE "C"
                    FROM unnest(collection_ids, vectors) AS g (collection_id, lexemes) CROSS JOIN unnest(g.lexemes) u
                    ORDER BY 1, 2
                    ON CONFLICT (collection_id, lexeme) DO NOTHING;
                -- (MATERIALIZED: counted once per chunk, not once per lexeme; in key order: each term's new
                -- postings go to the end of its run in the index)
                WITH a AS MATERIALIZED (
                    SELECT g.*, byline_token_count(g.lexemes) AS length
                    FROM unnest(collection_ids, rowids, vectors) AS g (collection_id, rowid, lexemes)
                )
                INSERT INTO lexical_postings
                    SELECT t.id, a.rowid, h.title_hits, cardinality(u.positions) - h.title_hits, a.length,
                           CASE WHEN h.title_hits > 0 THEN u.positions[:h.title_hits] END,
                           u.positions[h.title_hits + 1:]
                    FROM a CROSS JOIN unnest(a.lexemes) u
                    CROSS JOIN LATERAL (SELECT cardinality(array_positions(u.weights, 'A')) AS title_hits) h
                    JOIN lexical_terms t ON t.collection_id = a.collection_id AND t.lexeme = u.lexeme COLLATE "C"
                    ORDER BY t.id, a.rowid;
                UPDATE lexical_collections lc SET chunks = lc.chunks + s.n, tokens = lc.tokens + s.tokens
                FROM (SELECT g.collection, count(*) AS n, sum(byline_token_count(g.lexemes)) AS tokens
                      FROM unnest(collections, vectors) AS g (collection, lexemes) GROUP BY 1) s
                WHERE lc.name = s.collection;
            END $$;

        CREATE FUNCTION chunks_lexemes() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                NEW.lexemes := setweight(byline_lexemes(coalesce(
                                   (SELECT title FROM articles WHERE id = NEW.article_id), '')), 'A')
                               || setweight(byline_lexemes(NEW.text), 'D');
                RETURN NEW;
            END $$;
        CREATE TRIGGER chunks_lexemes BEFORE INSERT OR UPDATE ON chunks
            FOR EACH ROW EXECUTE FUNCTION chunks_lexemes();
        CREATE FUNCTION chunks_lexical_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM lexical_add(array_agg(collection), array_agg(rowid), array_agg(lexemes)) FROM new_chunks;
                RETURN NULL;
            END $$;
        CREATE FUNCTION chunks_lexical_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM lexical_remove(array_agg(collection), array_agg(rowid), array_agg(lexemes)) FROM old_chunks;
                RETURN NULL;
            END $$;
        CREATE FUNCTION chunks_lexical_updated() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM lexical_remove(array_agg(collection), array_agg(rowid), array_agg(lexemes)) FROM old_chunks;
                PERFORM lexical_add(array_agg(collection), array_agg(rowid), array_agg(lexemes)) FROM new_chunks;
                RETURN NULL;
            END $$;
        CREATE TRIGGER chunks_lexical_inserted AFTER INSERT ON chunks REFERENCING NEW TABLE AS new_chunks
            FOR EACH STATEMENT EXECUTE FUNCTION chunks_lexical_inserted();
        CREATE TRIGGER chunks_lexical_deleted AFTER DELETE ON chunks REFERENCING OLD TABLE AS old_chunks
            FOR EACH STATEMENT EXECUTE FUNCTION chunks_lexical_deleted();
        CREATE TRIGGER chunks_lexical_updated AFTER UPDATE ON chunks
            REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks
            FOR EACH STATEMENT EXECUTE FUNCTION chunks_lexical_updated();
        -- A new title: its article's chunks are rewritten, and the triggers above re-index them.
        CREATE FUNCTION articles_lexical_title() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE chunks SET lexemes = '' WHERE article_id = NEW.id;
                RETURN NULL;
            END $$;
        CREATE TRIGGER articles_lexical_title AFTER UPDATE OF title ON articles
            FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title) EXECUTE FUNCTION articles_lexical_title();
        """,
    ),
]


def migrate(conn: Connection[Any]) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction, once even when several processes start
    together (an advisory lock); returns their names."""
    applied: list[str] = []
    for name, sql in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY, applied_at text NOT NULL)")
            if conn.execute("SELECT 1 FROM migrations WHERE name = %s", (name,)).fetchone():
                continue
            conn.execute(sql)  # a script of several statements: allowed without parameters
            conn.execute("INSERT INTO migrations VALUES (%s, %s)", (name, _now()))
        applied.append(name)
    return applied


def write_articles(
    conn: Connection[Any], collection: str, written: Sequence[tuple[Article, Sequence[Chunk]]]
) -> list[str]:
    """Switch the catalog to these article versions in one transaction, each table written by one statement (so
    the lexical triggers run once per batch); returns the replaced chunk ids, as Catalog.commit_articles does."""
    latest = {article.id: (article, chunks) for article, chunks in written}  # a repeated article: the last wins
    ids = list(latest)
    articles = [article for article, _ in latest.values()]
    chunks = [chunk for _, article_chunks in latest.values() for chunk in article_chunks]
    now = _now()
    with conn.transaction():
        replaced = [
            row[0]
            for row in conn.execute(
                "DELETE FROM chunks WHERE collection = %s AND article_id = ANY(%s) RETURNING id", (collection, ids)
            )
        ]
        conn.execute(
            """INSERT INTO articles (id, title, url, path, source, source_key, author, published_at, published_ts,
                   hash, text, ingested_at, updated_at)
               SELECT *, %s, %s FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                   %s::text[], %s::text[], %s::float8[], %s::text[], %s::text[])
               ON CONFLICT (id) DO UPDATE SET title = excluded.title, url = excluded.url,
                   path = COALESCE(excluded.path, articles.path), source = excluded.source,
                   source_key = excluded.source_key, author = excluded.author,
                   published_at = excluded.published_at, published_ts = excluded.published_ts,
                   hash = excluded.hash, text = excluded.text, updated_at = excluded.updated_at""",
            (
                now,
                now,
                ids,
                [a.title for a in articles],
                [a.url for a in articles],
                [a.path for a in articles],
                [a.source for a in articles],
                [source_key(a.source) for a in articles],
                [a.author for a in articles],
                [a.published_at.isoformat() if a.published_at else None for a in articles],
                [a.published_at.timestamp() if a.published_at else None for a in articles],
                [a.content_hash for a in articles],
                [a.text for a in articles],
            ),
        )
        conn.execute(
            """INSERT INTO chunks (id, collection, article_id, position, start_char, end_char, text, token_count)
               SELECT u.id, %s, u.article_id, u.position, u.start_char, u.end_char, u.text, u.token_count
               FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[], %s::int[], %s::text[], %s::int[])
                   AS u (id, article_id, position, start_char, end_char, text, token_count)""",
            (
                collection,
                [c.id for c in chunks],
                [c.article_id for c in chunks],
                [c.position for c in chunks],
                [c.start for c in chunks],
                [c.end for c in chunks],
                [c.text for c in chunks],
                [c.token_count for c in chunks],
            ),
        )
        conn.execute(
            """INSERT INTO indexed SELECT %s, u.id, u.hash FROM unnest(%s::text[], %s::text[]) AS u (id, hash)
               ON CONFLICT (collection, article_id) DO UPDATE SET hash = excluded.hash""",
            (collection, ids, [a.content_hash for a in articles]),
        )
    new_ids = {c.id for c in chunks}
    return [chunk_id for chunk_id in replaced if chunk_id not in new_ids]


@dataclass(frozen=True, slots=True)
class _Term:
    """A query term: its tokens, stemmed, in order, and their ids in the collection (None: a lexeme no chunk has)."""

    lexemes: tuple[str, ...]
    term_ids: tuple[int | None, ...]

    @property
    def known(self) -> bool:
        return None not in self.term_ids


@dataclass(frozen=True, slots=True)
class _Scoring:
    total: int
    avgdl: float
    title_weight: float

    def idf(self, chunks: int) -> float:
        return max(math.log((self.total - chunks + 0.5) / (chunks + 0.5)), MIN_IDF)

    def score(self, idf: float, title_hits: int, text_hits: int, length: int) -> float:
        f = title_hits * self.title_weight + text_hits
        return idf * f * (K1 + 1) / (f + K1 * (1 - B + B * length / self.avgdl))


def lexical_search(
    conn: Connection[Any],
    collection: str,
    terms: Sequence[str],
    n: int,
    filters: SearchFilters | None = None,
    title_weight: float = 1.0,
    common_share: float = 1.0,
) -> list[tuple[str, float]]:
    """(chunk id, BM25 score, higher is better) of the current chunks matching any term, best first.

    Each term is matched as a phrase of its tokens and is never query syntax. In a large collection, terms found in
    more than `common_share` of its chunks are left out while rarer ones remain. Reads one snapshot.
    """
    if not terms or n <= 0:
        return []
    with conn.transaction():
        # No JIT: compiling, for costs estimated from guessed row counts, takes longer than the query.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL jit = off")
        found = conn.execute(
            "SELECT id, chunks, tokens FROM lexical_collections WHERE name = %s", (collection,)
        ).fetchone()
        if found is None or found[1] == 0:
            return []
        collection_id, total, tokens = found
        analysed = [term for term in _analyse(conn, collection_id, terms) if term.known]
        # Single lexemes are counted in their postings (up to the cap when common ones may be left out); phrases
        # are found, which counts them.
        common = common_share < 1 and len(analysed) > 1 and total >= COMMON_TERMS_FROM
        cap = int(common_share * total) if common else None
        singles = {term.term_ids[0] for term in analysed if len(term.lexemes) == 1}
        counts = _count_chunks(conn, singles, None if cap is None else cap + 1)
        phrases = {term: _phrase_hits(conn, term) for term in analysed if len(term.lexemes) > 1}

        def chunks(term: _Term) -> int:
            return len(phrases[term]) if term in phrases else counts[term.term_ids[0] or 0]

        if cap is not None:
            kept = [term for term in analysed if chunks(term) <= cap]
            if not kept:  # every term is common: score them all, with exact counts
                kept = analysed
                counts = _count_chunks(conn, singles, None)
            analysed = kept
        scoring = _Scoring(total, tokens / total, title_weight)
        phrase_scores: dict[int, float] = {}
        for term, hits in phrases.items():
            if term in analysed:
                idf = scoring.idf(len(hits))
                for chunk, title_hits, text_hits, length in hits:
                    score = scoring.score(idf, title_hits, text_hits, length)
                    phrase_scores[chunk] = phrase_scores.get(chunk, 0.0) + score
        weighted = [(term.term_ids[0], scoring.idf(chunks(term))) for term in analysed if len(term.lexemes) == 1]
        return _ranked(conn, weighted, phrase_scores, scoring, n, filters)


def _analyse(conn: Connection[Any], collection_id: int, terms: Sequence[str]) -> list[_Term]:
    """Each term's lexemes and their term ids; terms with no token are dropped."""
    rows = conn.execute(
        """SELECT l.lexemes, l.ids
           FROM unnest(%s::text[]) WITH ORDINALITY AS q (term, ord)
           CROSS JOIN LATERAL (
               SELECT array_agg(u.lexeme ORDER BY p) AS lexemes, array_agg(t.id ORDER BY p) AS ids
               FROM unnest(byline_lexemes(q.term)) u CROSS JOIN unnest(u.positions) p
               LEFT JOIN lexical_terms t ON t.collection_id = %s AND t.lexeme = u.lexeme COLLATE "C"
           ) l
           WHERE l.lexemes IS NOT NULL
           ORDER BY q.ord""",
        (list(terms), collection_id),
    ).fetchall()
    return [_Term(tuple(lexemes), tuple(ids)) for lexemes, ids in rows]


def _count_chunks(conn: Connection[Any], term_ids: set[int | None], limit: int | None) -> dict[int, int]:
    """Chunks holding each lexeme, counted up to `limit` (None: all)."""
    rows = conn.execute(
        """SELECT q.id, (SELECT count(*) FROM (SELECT 1 FROM lexical_postings p WHERE p.term_id = q.id LIMIT %s) x)
           FROM unnest(%s::int[]) AS q (id)""",
        (limit, sorted(term_id for term_id in term_ids if term_id is not None)),
    ).fetchall()
    return {int(row[0]): int(row[1]) for row in rows}


def _phrase_hits(conn: Connection[Any], term: _Term) -> list[tuple[int, int, int, int]]:
    """(chunk rowid, title hits, text hits, chunk length) of the chunks where the phrase occurs, from the postings
    of its lexemes alone: an occurrence at position x in a column has token i at x + i in that column."""
    from psycopg import sql

    postings = [sql.Identifier(f"p{i}") for i in range(len(term.lexemes))]
    joins = sql.SQL(" ").join(
        sql.SQL("JOIN lexical_postings {p} ON {p}.term_id = {id} AND {p}.chunk = p0.chunk").format(
            p=p, id=sql.Literal(term_id)
        )
        for p, term_id in zip(postings[1:], term.term_ids[1:], strict=True)
    )

    def occurrences(column: str, hits: str) -> sql.Composable:
        """Occurrences in one column, counted only where every lexeme is in that column."""
        follows = sql.SQL(" AND ").join(
            sql.SQL("x + {i} = ANY({p}.{column})").format(i=sql.Literal(i), p=p, column=sql.Identifier(column))
            for i, p in enumerate(postings[1:], start=1)
        )
        present = sql.SQL(" AND ").join(
            sql.SQL("{p}.{hits} > 0").format(p=p, hits=sql.Identifier(hits)) for p in postings
        )
        return sql.SQL(
            "CASE WHEN {present} THEN (SELECT count(*) FROM unnest(p0.{column}) x WHERE {follows}) ELSE 0 END"
        ).format(present=present, column=sql.Identifier(column), follows=follows)

    query = sql.SQL(
        """SELECT chunk, title_hits, text_hits, length FROM (
               SELECT p0.chunk, {title} AS title_hits, {text} AS text_hits, p0.length
               FROM lexical_postings p0 {joins} WHERE p0.term_id = {first}
           ) hits WHERE title_hits + text_hits > 0"""
    ).format(
        title=occurrences("title_positions", "title_hits"),
        text=occurrences("text_positions", "text_hits"),
        joins=joins,
        first=sql.Literal(term.term_ids[0]),
    )
    return [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(query).fetchall()]


def _ranked(
    conn: Connection[Any],
    singles: Sequence[tuple[int | None, float]],
    phrase_scores: dict[int, float],
    scoring: _Scoring,
    n: int,
    filters: SearchFilters | None,
) -> list[tuple[str, float]]:
    where, params = _filter_sql(filters)
    scored = """
        SELECT chunk, sum(score) AS score FROM (
            SELECT p.chunk, q.idf * f.f * %(k1_plus_1)s
                   / (f.f + %(k1)s * (1 - %(b)s + %(b)s * p.length / %(avgdl)s)) AS score
            FROM unnest(%(term_ids)s::int[], %(idfs)s::float8[]) AS q (term_id, idf)
            JOIN lexical_postings p ON p.term_id = q.term_id
            CROSS JOIN LATERAL (SELECT p.title_hits * %(title_weight)s + p.text_hits AS f) f
            UNION ALL
            SELECT * FROM unnest(%(phrase_chunks)s::bigint[], %(phrase_scores)s::float8[])
        ) s GROUP BY chunk"""
    values: dict[str, object] = {
        "k1": K1,
        "k1_plus_1": K1 + 1,
        "b": B,
        "avgdl": scoring.avgdl,
        "title_weight": scoring.title_weight,
        "term_ids": [term_id for term_id, _ in singles],
        "idfs": [idf for _, idf in singles],
        "phrase_chunks": list(phrase_scores),
        "phrase_scores": list(phrase_scores.values()),
        "n": n,
        **params,
    }
    if not where:
        # Unfiltered, the usual case: rank first and join only the best rows. Rows of superseded versions drop out
        # at the join: fetch more, and check.
        values["fetched"] = fetched = 2 * n
        rows = conn.execute(
            f"""SELECT c.id, s.score, coalesce(i.hash = a.hash, false) FROM (
                    SELECT chunk, score FROM ({scored}) s ORDER BY score DESC, chunk LIMIT %(fetched)s) s
                LEFT JOIN chunks c ON c.rowid = s.chunk LEFT JOIN articles a ON a.id = c.article_id
                LEFT JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id
                ORDER BY s.score DESC, s.chunk""",
            values,
        ).fetchall()
        best = [(row[0], float(row[1])) for row in rows if row[2]][:n]
        if len(best) == n or len(rows) < fetched:  # enough, or nothing more matched
            return best
    rows = conn.execute(
        f"""SELECT c.id, s.score FROM ({scored}) s
            JOIN chunks c ON c.rowid = s.chunk JOIN articles a ON a.id = c.article_id
            JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id
            WHERE i.hash = a.hash {where} ORDER BY s.score DESC, s.chunk LIMIT %(n)s""",
        values,
    ).fetchall()
    return [(row[0], float(row[1])) for row in rows]


def _filter_sql(filters: SearchFilters | None) -> tuple[str, dict[str, object]]:
    if not filters:
        return "", {}
    clauses: list[str] = []
    params: dict[str, object] = {}
    if filters.sources:
        clauses.append("a.source_key = ANY(%(source_keys)s)")
        params["source_keys"] = filters.source_keys()
    since, until = filters.published_range()
    if since is not None:
        clauses.append("a.published_ts >= %(since)s")
        params["since"] = since
    if until is not None:
        clauses.append("a.published_ts <= %(until)s")
        params["until"] = until
    return "".join(" AND " + clause for clause in clauses), params


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
