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
  phrases, and `chunks.lexical_length`, its tokens; set by a BEFORE row trigger;
- `lexical_postings`: one row per (lexeme of a collection, chunk) with its title and text hits and the chunk's
  length, all in the primary key's index: the inverted index BM25 reads; and its positions per column, for
  phrases. Scoring from the tsvectors instead (a GIN index to find chunks, `unnest` for term frequencies) pays a
  decompression per matching chunk, too slow for words found in thousands of chunks, and so did checking
  phrases in them;
- `lexical_terms`: lexeme ids per collection, only ever added to; how many chunks hold a lexeme is counted in its
  postings at query time, so writers never rewrite shared rows;
- `lexical_collections`: chunks and tokens per collection.
Postings and totals change once per statement (transition tables): write chunks in multi-row statements, as
ingest.storage.postgres_articles does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ingest.models import SearchFilters
from ingest.storage.catalog import LexicalQuery

if TYPE_CHECKING:
    from psycopg import Connection

K1 = 1.2
B = 0.75
# FTS5 floors the IDF of a phrase found in more than half the rows at this, so it still counts a little.
MIN_IDF = 1e-6
# Below this many chunks every query term is scored (as in the SQLite catalog).
COMMON_TERMS_FROM = 10_000


@dataclass(frozen=True, slots=True)
class _Term:
    """A query term found in the collection: its tokens, stemmed, in order, their lexeme ids, and the chunks it
    occurs in (a single lexeme's counted in its postings, perhaps only up to past the common-term cap)."""

    lexemes: tuple[str, ...]
    term_ids: tuple[int, ...]
    chunks: int


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


def lexical_search(conn: Connection[Any], collection: str, query: LexicalQuery) -> list[tuple[str, float]]:
    """(chunk id, BM25 score, higher is better) of the current chunks matching any of the query's terms, best
    first, as the SQLite catalog's lexical_search.

    Two statements, each its own snapshot (as the SQLite catalog's common-term count and its MATCH): a write
    committed in between can shift the statistics a little, never return a row that is no longer current.
    `conn` should have JIT off (the catalog's connections do).
    """
    if not query.terms or query.n <= 0:
        return []
    total, tokens, terms = _analyse(conn, collection, query)
    if not total:
        return []
    phrases = {i: _phrase_hits(conn, term) for i, term in enumerate(terms) if len(term.lexemes) > 1}
    terms = [replace(term, chunks=len(phrases[i])) if i in phrases else term for i, term in enumerate(terms)]
    cap = int(query.common_share * total)
    kept = list(range(len(terms)))
    if query.common_share < 1 and len(terms) > 1 and total >= COMMON_TERMS_FROM:
        kept = [i for i in kept if terms[i].chunks <= cap] or kept  # the common ones, unless all are
    if query.common_share < 1 and total >= COMMON_TERMS_FROM:  # counted only up to past the cap
        terms = _count_in_full(conn, terms, [i for i in kept if i not in phrases and terms[i].chunks > cap])
    scoring = _Scoring(total, tokens / total, query.title_weight)
    phrase_scores: dict[int, float] = {}
    for i, hits in phrases.items():
        if i in kept:
            idf = scoring.idf(terms[i].chunks)
            for chunk, title_hits, text_hits, length in hits:
                score = scoring.score(idf, title_hits, text_hits, length)
                phrase_scores[chunk] = phrase_scores.get(chunk, 0.0) + score
    weighted = [(terms[i].term_ids[0], scoring.idf(terms[i].chunks)) for i in kept if i not in phrases]
    return _ranked(conn, weighted, phrase_scores, scoring, query.n, query.filters)


def _analyse(conn: Connection[Any], collection: str, query: LexicalQuery) -> tuple[int, int, list[_Term]]:
    """The collection's chunks and tokens, and the query's terms found in it (with a token, every lexeme in the
    collection), a single lexeme's chunks counted in its postings only up to past the common-term cap if any."""
    rows = conn.execute(
        """WITH c AS (SELECT id, chunks, tokens FROM lexical_collections WHERE name = %(collection)s),
           q AS (
               SELECT q.ord, l.lexemes, l.ids
               FROM c, unnest(%(terms)s::text[]) WITH ORDINALITY AS q (term, ord)
               CROSS JOIN LATERAL (
                   SELECT array_agg(u.lexeme ORDER BY p) AS lexemes, array_agg(t.id ORDER BY p) AS ids
                   FROM unnest(byline_lexemes(q.term)) u CROSS JOIN unnest(u.positions) p
                   LEFT JOIN lexical_terms t ON t.collection_id = c.id AND t.lexeme = u.lexeme COLLATE "C"
               ) l
               WHERE l.lexemes IS NOT NULL AND array_position(l.ids, NULL) IS NULL
           )
           SELECT c.chunks, c.tokens, q.lexemes, q.ids, CASE WHEN cardinality(q.ids) = 1 THEN (
                      SELECT count(*) FROM (
                          SELECT 1 FROM lexical_postings p WHERE p.term_id = q.ids[1]
                          LIMIT CASE WHEN %(share)s < 1 AND c.chunks >= %(large)s
                                     THEN floor(%(share)s * c.chunks)::bigint + 1 END
                      ) x
                  ) ELSE 0 END
           FROM c LEFT JOIN q ON true ORDER BY q.ord""",
        {
            "collection": collection,
            "terms": list(query.terms),
            "share": query.common_share,
            "large": COMMON_TERMS_FROM,
        },
    ).fetchall()
    if not rows:
        return 0, 0, []
    terms = [_Term(tuple(lexemes), tuple(ids), int(n)) for _, _, lexemes, ids, n in rows if lexemes is not None]
    return int(rows[0][0]), int(rows[0][1]), terms


def _count_in_full(conn: Connection[Any], terms: list[_Term], which: Sequence[int]) -> list[_Term]:
    """`terms` with the chunks of the single-lexeme ones at `which` counted in full."""
    if not which:
        return terms
    rows = conn.execute(
        """SELECT q.id, (SELECT count(*) FROM lexical_postings p WHERE p.term_id = q.id)
           FROM unnest(%s::int[]) AS q (id)""",
        ([terms[i].term_ids[0] for i in which],),
    ).fetchall()
    counts = {int(term_id): int(n) for term_id, n in rows}
    return [replace(term, chunks=counts[term.term_ids[0]]) if i in which else term for i, term in enumerate(terms)]


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
        """Occurrences in one column, counted only where every lexeme is in that column. Where the first lexeme
        is there once, as it mostly is, its position is tested directly: a subquery per chunk costs more than
        the join that found the chunk."""

        def follows(x: sql.Composable) -> sql.Composable:
            return sql.SQL(" AND ").join(
                sql.SQL("{x} + {i} = ANY({p}.{column})").format(
                    x=x, i=sql.Literal(i), p=p, column=sql.Identifier(column)
                )
                for i, p in enumerate(postings[1:], start=1)
            )

        present = sql.SQL(" AND ").join(
            sql.SQL("{p}.{hits} > 0").format(p=p, hits=sql.Identifier(hits)) for p in postings
        )
        return sql.SQL(
            """CASE WHEN NOT ({present}) THEN 0
                    WHEN p0.{hits} = 1 THEN ({once})::int
                    ELSE (SELECT count(*) FROM unnest(p0.{column}) x WHERE {each}) END"""
        ).format(
            present=present,
            hits=sql.Identifier(hits),
            once=follows(sql.SQL("p0.{column}[1]").format(column=sql.Identifier(column))),
            column=sql.Identifier(column),
            each=follows(sql.SQL("x")),
        )

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
