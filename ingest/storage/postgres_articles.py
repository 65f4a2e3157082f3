"""Writing article versions into the PostgreSQL catalog: each table by one statement per batch, so the lexical
index's statement triggers (ingest.storage.postgres_lexical) run once per batch, not once per chunk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ingest.clock import now_iso
from ingest.models import Article, Chunk, source_key
from ingest.storage.catalog import DELETING, StoredVector

if TYPE_CHECKING:
    from psycopg import Connection


def write_articles(
    conn: Connection[Any],
    collection: str,
    written: Sequence[tuple[Article, Sequence[Chunk]]],
    vectors: Sequence[StoredVector] = (),
    *,
    retire: Sequence[str] = (),
) -> list[str]:
    """Catalog.commit_articles inside the caller's transaction: the catalog switched to these article versions,
    each chunk's vector kept (none when `vectors` is empty), the `retire`d articles gone and marked pending for
    removal; returns the replaced chunk ids. The pending marks stay: the store clears them."""
    if vectors and len(vectors) != sum(len(chunks) for _, chunks in written):
        raise ValueError("one vector per chunk expected")
    kept = iter(vectors)
    latest: dict[str, tuple[Article, list[tuple[Chunk, StoredVector | None]]]] = {}
    for article, article_chunks in written:  # a repeated article: the last wins
        latest[article.id] = (article, [(c, next(kept) if vectors else None) for c in article_chunks])
    articles = [article for article, _ in latest.values()]
    ids = list(latest)
    pairs = [pair for _, article_pairs in latest.values() for pair in article_pairs]
    if retire:
        _retire(conn, collection, retire)
    replaced = [
        row[0]
        for row in conn.execute(
            "DELETE FROM chunks WHERE collection = %s AND article_id = ANY(%s) RETURNING id", (collection, ids)
        )
    ]
    _upsert_articles(conn, articles)  # before the chunks: their lexical trigger reads the title
    _insert_chunks(conn, collection, pairs)
    conn.execute(
        """INSERT INTO indexed SELECT %s, u.id, u.hash FROM unnest(%s::text[], %s::text[]) AS u (id, hash)
           ON CONFLICT (collection, article_id) DO UPDATE SET hash = excluded.hash""",
        (collection, ids, [a.content_hash for a in articles]),
    )
    conn.execute(
        """INSERT INTO article_paths SELECT u.path, u.id FROM unnest(%s::text[], %s::text[]) AS u (path, id)
           ON CONFLICT DO NOTHING""",
        ([a.path for a in articles if a.path], [a.id for a in articles if a.path]),
    )
    conn.execute("DELETE FROM forgotten WHERE article_id = ANY(%s)", (ids,))  # ingested again on purpose
    new_ids = {c.id for c, _ in pairs}
    return [chunk_id for chunk_id in replaced if chunk_id not in new_ids]


def _retire(conn: Connection[Any], collection: str, retire: Sequence[str]) -> None:
    """Older versions of an edited file: gone from the catalog, marked pending for removal of their vectors."""
    conn.execute(
        """INSERT INTO pending_writes SELECT %s, u.id, %s, %s FROM unnest(%s::text[]) AS u (id)
           ON CONFLICT (collection, article_id) DO UPDATE
               SET hash = excluded.hash, started_at = excluded.started_at""",
        (collection, DELETING, now_iso(), sorted(set(retire))),
    )
    conn.execute("DELETE FROM articles WHERE id = ANY(%s)", (list(retire),))


def _insert_chunks(conn: Connection[Any], collection: str, pairs: Sequence[tuple[Chunk, StoredVector | None]]) -> None:
    """The chunks, each with its kept vector (or none), in one statement (the lexical triggers run once)."""
    conn.execute(
        """INSERT INTO chunks (id, collection, article_id, position, start_char, end_char, text, token_count,
               instruction_like, vector, embed_hash)
           SELECT u.id, %s, u.article_id, u.position, u.start_char, u.end_char, u.text, u.token_count,
               u.instruction_like, u.vector, u.embed_hash
           FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[], %s::int[], %s::text[], %s::int[], %s::int[],
                       %s::bytea[], %s::text[])
               AS u (id, article_id, position, start_char, end_char, text, token_count, instruction_like, vector,
                     embed_hash)""",
        (
            collection,
            [c.id for c, _ in pairs],
            [c.article_id for c, _ in pairs],
            [c.position for c, _ in pairs],
            [c.start for c, _ in pairs],
            [c.end for c, _ in pairs],
            [c.text for c, _ in pairs],
            [c.token_count for c, _ in pairs],
            [int(c.instruction_like) for c, _ in pairs],
            [v.vector if v else None for _, v in pairs],
            [v.embed_hash if v else None for _, v in pairs],
        ),
    )


def _upsert_articles(conn: Connection[Any], articles: Sequence[Article]) -> None:
    now = now_iso()
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
            [a.id for a in articles],
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
