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
    from psycopg import Connection, sql

K1 = 1.2
B = 0.75
# FTS5 floors the IDF of a phrase found in more than half the rows at this, so it still counts a little.
MIN_IDF = 1e-6
# Below this many chunks every query term is scored (as in the SQLite catalog).
COMMON_TERMS_FROM = 10_000


@dataclass(frozen=True, slots=True)
class _Term:
    """A query term found in the collection: its tokens, stemmed, in order, their lexeme ids, and the chunks it
    occurs in (a single lexeme's counted in its postings, perhaps only up to past the common-term cap; a phrase's
    0 until counted, which the ranking statement does itself)."""

    lexemes: tuple[str, ...]
    term_ids: tuple[int, ...]
    chunks: int


@dataclass(frozen=True, slots=True)
class _Scoring:
    total: int
    avgdl: float
    title_weight: float

    def idf(self, chunks: int) -> float:
        """A single lexeme's; a phrase's is computed in SQL, where it is counted (the same formula)."""
        return max(math.log((self.total - chunks + 0.5) / (chunks + 0.5)), MIN_IDF)


def lexical_search(conn: Connection[Any], collection: str, query: LexicalQuery) -> list[tuple[str, float]]:
    """(chunk id, BM25 score, higher is better) of the current chunks matching any of the query's terms, best
    first, as the SQLite catalog's lexical_search.

    Two statements, each its own snapshot (as the SQLite catalog's common-term count and its MATCH): a write
    committed in between can shift the statistics a little, never return a row that is no longer current.
    Phrases are found, counted and scored in the ranking statement, so their chunks never leave the server.
    `conn` should have JIT off (the catalog's connections do).
    """
    if not query.terms or query.n <= 0:
        return []
    total, tokens, terms = _analyse(conn, collection, query)
    if not total:
        return []
    phrases = {i for i, term in enumerate(terms) if len(term.lexemes) > 1}
    cap = int(query.common_share * total)
    capped = query.common_share < 1 and total >= COMMON_TERMS_FROM
    kept = list(range(len(terms)))
    phrase_cap = None
    if capped and len(terms) > 1:
        if any(terms[i].chunks <= cap for i in kept if i not in phrases):
            # A rare lexeme stays whatever the phrases count, so the common phrases can be left out where they
            # are counted, in the ranking statement.
            kept = [i for i in kept if i in phrases or terms[i].chunks <= cap]
            phrase_cap = cap
        else:
            # Whether the common lexemes stay depends on the phrases' counts: one more statement (rare in
            # practice: most questions hold a rare word).
            terms = _count_phrases(conn, terms, sorted(phrases))
            kept = [i for i in kept if terms[i].chunks <= cap] or kept
    if capped:  # counted only up to past the cap
        terms = _count_in_full(conn, terms, [i for i in kept if i not in phrases and terms[i].chunks > cap])
    scoring = _Scoring(total, tokens / total, query.title_weight)
    singles = [(terms[i].term_ids[0], scoring.idf(terms[i].chunks)) for i in kept if i not in phrases]
    scored = [terms[i] for i in kept if i in phrases]
    return _ranked(conn, singles, scored, phrase_cap, scoring, query.n, query.filters)


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


def _phrase_sql(term: _Term) -> sql.Composable:
    """A query for (chunk, title_hits, text_hits, length) of the chunks where the phrase occurs, from the postings
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

    return sql.SQL(
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


def _count_phrases(conn: Connection[Any], terms: list[_Term], which: Sequence[int]) -> list[_Term]:
    """`terms` with the chunks of the phrases at `which` counted."""
    from psycopg import sql

    if not which:
        return terms
    counts = conn.execute(
        sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(sql.SQL("(SELECT count(*) FROM ({}) hits)").format(_phrase_sql(terms[i])) for i in which)
        )
    ).fetchone()
    assert counts is not None
    chunks = dict(zip(which, counts, strict=True))
    return [replace(term, chunks=int(chunks[i])) if i in chunks else term for i, term in enumerate(terms)]


def _ranked(
    conn: Connection[Any],
    singles: Sequence[tuple[int | None, float]],
    phrases: Sequence[_Term],
    phrase_cap: int | None,
    scoring: _Scoring,
    n: int,
    filters: SearchFilters | None,
) -> list[tuple[str, float]]:
    """The best `n` current chunks by the sum of the scores of `singles` (lexeme id, idf) and `phrases` (counted
    here for their idf, and left out if found in more than `phrase_cap` chunks)."""
    from psycopg import sql

    where, params = _filter_sql(filters)
    # Rows (chunk, term, idf, f, length), a row per term found in a chunk, f its weighted hits; the lexemes
    # numbered first, then the phrases.
    matches: list[sql.Composable] = [
        sql.SQL(
            """SELECT p.chunk, q.term, q.idf, p.title_hits * %(title_weight)s + p.text_hits, p.length
               FROM unnest(%(term_ids)s::int[], %(idfs)s::float8[]) WITH ORDINALITY AS q (term_id, idf, term)
               JOIN lexical_postings p ON p.term_id = q.term_id"""
        )
    ]
    for term, phrase in enumerate(phrases, start=len(singles) + 1):
        matches.append(
            sql.SQL(
                """SELECT chunk, {term}::bigint, greatest(ln((%(total)s - chunks + 0.5) / (chunks + 0.5)), %(min_idf)s),
                          title_hits * %(title_weight)s + text_hits, length
                   FROM (SELECT hits.*, count(*) OVER ()::float8 AS chunks FROM ({hits}) hits) hits {common}"""
            ).format(
                term=sql.Literal(term),
                hits=_phrase_sql(phrase),
                common=sql.SQL("" if phrase_cap is None else "WHERE chunks <= %(phrase_cap)s"),
            )
        )
    # A chunk's term scores are added in term order whatever the plan: in another order, the last bits of the
    # sum, and so the order of equally scored chunks, would change.
    scored = sql.SQL(
        """SELECT chunk, sum(idf * f * %(k1_plus_1)s / (f + %(k1)s * (1 - %(b)s + %(b)s * length / %(avgdl)s)))
                  AS score
           FROM ({matches} ORDER BY 1, 2) s (chunk, term, idf, f, length) GROUP BY chunk"""
    ).format(matches=sql.SQL(" UNION ALL ").join(matches))
    values: dict[str, object] = {
        "k1": K1,
        "k1_plus_1": K1 + 1,
        "b": B,
        "avgdl": scoring.avgdl,
        "title_weight": scoring.title_weight,
        "total": float(scoring.total),  # so a phrase's idf is float8 arithmetic throughout, as _Scoring.idf
        "min_idf": MIN_IDF,
        "phrase_cap": phrase_cap,
        "term_ids": [term_id for term_id, _ in singles],
        "idfs": [idf for _, idf in singles],
        "n": n,
        **params,
    }
    if not where:
        # Unfiltered, the usual case: rank first and join only the best rows. Rows of superseded versions drop out
        # at the join: fetch more, and check.
        values["fetched"] = fetched = 2 * n
        rows = conn.execute(
            sql.SQL(
                """SELECT c.id, s.score, coalesce(i.hash = a.hash, false) FROM (
                       SELECT chunk, score FROM ({scored}) s ORDER BY score DESC, chunk LIMIT %(fetched)s) s
                   LEFT JOIN chunks c ON c.rowid = s.chunk LEFT JOIN articles a ON a.id = c.article_id
                   LEFT JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id
                   ORDER BY s.score DESC, s.chunk"""
            ).format(scored=scored),
            values,
        ).fetchall()
        best = [(row[0], float(row[1])) for row in rows if row[2]][:n]
        if len(best) == n or len(rows) < fetched:  # enough, or nothing more matched
            return best
    rows = conn.execute(
        sql.SQL(
            """SELECT c.id, s.score FROM ({scored}) s
               JOIN chunks c ON c.rowid = s.chunk JOIN articles a ON a.id = c.article_id
               JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id
               WHERE i.hash = a.hash {where} ORDER BY s.score DESC, s.chunk LIMIT %(n)s"""
        ).format(scored=scored, where=sql.SQL(where)),
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
